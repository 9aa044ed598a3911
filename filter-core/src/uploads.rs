//! Gemini resumable uploads through the proxy: the decisions around the session table.
//!
//! 1. The start call carries a token and goes through the normal check. Its response's upload
//!    URLs are pointed back at the proxy ([`response_edits`]) and the session is recorded for
//!    that token (`upload_sessions`).
//! 2. A later leg without any token (`upload`, `finalize`, `query`, `cancel`, as Python
//!    `google-genai` and REST clients send them) is a [`keyless_leg`]: forwarded only for a
//!    session the proxy started, whose token is still valid ([`crate::bound_check`]: a fresh
//!    cached verdict or a `/v1/revalidate` of the token's hash, which charges no rate-limit
//!    unit: an upload counts once, at its start, however many chunks it takes, 8 MiB each in
//!    the SDKs).
//!    The leg is forwarded with no key at all (Google authenticates it by its upload id).
//! 3. A leg that carries a token is an ordinary request.

use ptk_wire::Provider;

use crate::config::FilterConfig;
use crate::cors::origin_of;
use crate::dialect::ErrorShape;
use crate::guard::{self, Sought};
use crate::pipeline::{refuse, Refused};
use crate::plan::{set_path_and_authority, RewritePlan, ACCOUNT_HEADERS, CREDENTIAL_HEADERS};
use crate::refusal::Refusal;
use crate::request::RequestHead;
use crate::upload_sessions::Session;
use crate::upload_url::{
    on_provider, rewrite, upload_id, url_query, ClientOrigin, UPLOAD_URL_HEADERS,
};

/// The response header with the state of an upload session.
pub const UPLOAD_STATUS_HEADER: &str = "x-goog-upload-status";

/// True for a path under Google's upload surface (`/upload/…`, SDKs may double the slash),
/// with no `.`/`..` segment in any encoding, so a keyless leg cannot step out of it.
pub fn is_upload_path(path: &str) -> bool {
    let trimmed = path.trim_start_matches('/');
    if !trimmed.starts_with("upload/") || trimmed.len() == path.len() {
        return false;
    }
    !trimmed.split('/').any(|segment| {
        let decoded = segment.replace("%2e", ".").replace("%2E", ".");
        decoded == "." || decoded == ".."
    })
}

/// A request that carries no token but names an upload session.
#[derive(Clone)]
pub struct PendingLeg {
    /// The session's upload id, as the client sent it (decoded).
    pub upload_id: String,
    /// The request's `Origin`, for CORS.
    pub origin: Option<String>,
}

impl std::fmt::Debug for PendingLeg {
    // An upload id is a capability: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLeg")
            .field("upload_id", &"[redacted]")
            .field("origin", &self.origin)
            .finish()
    }
}

impl PendingLeg {
    /// The refusal in Gemini's shape (the upload surface is Gemini's), CORS-decorated. When the
    /// session cannot go on (unknown session, refused token) it also says
    /// `x-goog-upload-status: final`, as Google does for a dead session: the SDKs retry a leg
    /// answered without that header (Python three times, 7 s of back-off) and stop on it.
    pub fn refuse(&self, refusal: Refusal) -> Refused {
        let mut refused = refuse(refusal, ErrorShape::Gemini, false, self.origin.as_deref());
        let dead = matches!(
            refusal,
            Refusal::UnknownUpload
                | Refusal::Invalid
                | Refusal::Expired
                | Refusal::ProviderNotAllowed
        );
        if dead {
            refused
                .reply
                .headers
                .push((UPLOAD_STATUS_HEADER.to_string(), "final".to_string()));
        }
        refused
    }

    /// The rewrite of this leg ([`leg_plan`], routed to `authority`); or, when the request
    /// would still carry a credential value from its slots or something shaped like a
    /// generated proxy token anywhere (the final guard, [`guard::inspect`]), the 400 refusal
    /// to answer instead.
    pub fn allow(&self, head: &RequestHead, authority: &str) -> Result<RewritePlan, Refused> {
        let plan = leg_plan(head, authority);
        if guard::inspect(head, &plan, Sought::Slots(None))
            .finding
            .is_some()
        {
            return Err(self.refuse(Refusal::TokenInRequest));
        }
        Ok(plan)
    }

    /// The watch of this leg's response, once it is forwarded for `session`.
    pub fn watch(&self, head: &RequestHead, session: &Session) -> UploadWatch {
        UploadWatch {
            origin: ClientOrigin::of(head),
            owner: (session.token_hash.clone(), session.provider),
            leg_id: Some(self.upload_id.clone()),
        }
    }
}

/// The keyless leg a token-less request is, if it is one: uploads on, not an upgrade, `POST` or
/// `PUT` (every command of Google's protocol), an upload path and exactly one `upload_id`.
pub fn keyless_leg(config: &FilterConfig, head: &RequestHead) -> Option<PendingLeg> {
    if !config.uploads.enabled || head.is_websocket_upgrade() {
        return None;
    }
    if !matches!(head.method(), "POST" | "PUT") || !is_upload_path(head.path()) {
        return None;
    }
    Some(PendingLeg {
        upload_id: upload_id(head.query())?,
        origin: origin_of(head),
    })
}

/// The rewrite of a keyless leg: every credential slot and account header emptied (a leg
/// carries none, and whatever is there must not reach Google; an upload leg is no WebSocket,
/// so its `sec-websocket-protocol`, where a token can ride, goes whole), every credential or
/// account query parameter stripped, no key set, routed to the provider.
pub fn leg_plan(head: &RequestHead, authority: &str) -> RewritePlan {
    let remove = CREDENTIAL_HEADERS
        .iter()
        .chain(ACCOUNT_HEADERS.iter())
        .chain(&["sec-websocket-protocol"])
        .filter(|name| head.header(name).is_some())
        .map(|name| name.to_string())
        .collect();
    let mut set = Vec::new();
    set_path_and_authority(head, authority, &mut set);
    RewritePlan { remove, set }
}

/// What a forwarded request's response needs from the upload logic.
#[derive(Clone, PartialEq, Eq)]
pub struct UploadWatch {
    /// Where the client reached the proxy (`None`: upload URLs cannot be pointed back).
    pub origin: Option<ClientOrigin>,
    /// The token hash and provider a new session belongs to.
    pub owner: (String, Provider),
    /// The session this request continues, if it names one.
    pub leg_id: Option<String>,
}

impl std::fmt::Debug for UploadWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadWatch")
            .field("origin", &self.origin)
            .field("provider", &self.owner.1)
            .field("leg", &self.leg_id.is_some())
            .finish()
    }
}

/// The watch for a request forwarded to `provider` for the token with hash `token_hash`: only
/// Gemini requests that take part in an upload (an `x-goog-upload-*` header or an upload path),
/// so other responses cost no header reads.
pub fn watch(
    config: &FilterConfig,
    head: &RequestHead,
    token_hash: &str,
    provider: Provider,
) -> Option<UploadWatch> {
    if !config.uploads.enabled || provider != Provider::Gemini {
        return None;
    }
    let uploading = head.header("x-goog-upload-protocol").is_some()
        || head.header("x-goog-upload-command").is_some()
        || is_upload_path(head.path());
    uploading.then(|| UploadWatch {
        origin: ClientOrigin::of(head),
        owner: (token_hash.to_string(), provider),
        leg_id: upload_id(head.query()),
    })
}

/// The edits a response needs.
#[derive(Default, PartialEq, Eq)]
pub struct ResponseEdits {
    /// Upload-URL headers to replace, pointed at the proxy.
    pub set: Vec<(String, String)>,
    /// Upload ids of sessions the response started (to record for the owner).
    pub started: Vec<String>,
    /// The session this response finished (`final` or `cancelled`), to mark.
    pub finished: Option<String>,
    /// An upload URL on the provider's host could not be pointed back (no usable origin).
    pub unrewritable: bool,
}

impl std::fmt::Debug for ResponseEdits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.set.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("ResponseEdits")
            .field("set", &names)
            .field("started", &self.started.len())
            .field("finished", &self.finished.is_some())
            .field("unrewritable", &self.unrewritable)
            .finish()
    }
}

/// Decides the response edits. `header(name)` reads a response header; `status` is the
/// response's. A session is recorded only from a 2xx answer.
pub fn response_edits(
    watch: &UploadWatch,
    provider_authority: &str,
    status: Option<u16>,
    header: impl Fn(&str) -> Option<String>,
) -> ResponseEdits {
    let mut edits = ResponseEdits::default();
    let success = status.is_some_and(|s| (200..300).contains(&s));
    for name in UPLOAD_URL_HEADERS {
        let Some(url) = header(name) else {
            continue;
        };
        // Only the provider's own URLs are ours to point back (and to record).
        if !on_provider(&url, provider_authority) {
            continue;
        }
        match watch
            .origin
            .as_ref()
            .and_then(|origin| rewrite(&url, provider_authority, origin))
        {
            Some(pointed) => edits.set.push((name.to_string(), pointed)),
            None => {
                edits.unrewritable = true;
                continue;
            }
        }
        if let Some(id) = upload_id(url_query(&url)).filter(|_| success) {
            if !edits.started.contains(&id) {
                edits.started.push(id);
            }
        }
    }
    let done = header(UPLOAD_STATUS_HEADER).is_some_and(|s| {
        let s = s.trim();
        s.eq_ignore_ascii_case("final") || s.eq_ignore_ascii_case("cancelled")
    });
    if done {
        edits.finished = watch.leg_id.clone();
    }
    edits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::head;

    const GOOGLE: &str = "generativelanguage.googleapis.com";
    const HASH: &str = "ab00000000000000000000000000000000000000000000000000000000000001";

    fn config() -> FilterConfig {
        FilterConfig::parse(b"").unwrap()
    }

    fn leg(pairs: &[(&str, &str)]) -> Option<PendingLeg> {
        keyless_leg(&config(), &head(pairs))
    }

    #[test]
    fn upload_paths() {
        for ok in [
            "/upload/v1beta/files",
            "//upload/v1beta/files",
            "/upload/x/y:z",
        ] {
            assert!(is_upload_path(ok), "{ok}");
        }
        for bad in [
            "/v1beta/files",
            "upload/v1beta/files",
            "/uploads/x",
            "/upload",
            "/upload/../v1beta/models/m:generateContent",
            "/upload/%2e%2E/v1beta/models",
            "/upload/./x",
            "/upload/x/..",
            "/x/upload/y",
        ] {
            assert!(!is_upload_path(bad), "{bad}");
        }
    }

    #[test]
    fn a_keyless_leg_is_post_or_put_on_an_upload_path_with_one_upload_id() {
        let path = "/upload/v1beta/files?upload_id=abc&upload_protocol=resumable";
        let found = leg(&[(":method", "POST"), (":path", path)]).unwrap();
        assert_eq!(found.upload_id, "abc");
        assert!(!format!("{found:?}").contains("abc"));
        assert!(leg(&[(":method", "PUT"), (":path", path)]).is_some());
        let with_origin = leg(&[
            (":method", "POST"),
            (":path", path),
            ("origin", "https://a"),
        ]);
        assert_eq!(with_origin.unwrap().origin.as_deref(), Some("https://a"));
        for pairs in [
            vec![(":method", "GET"), (":path", path)],
            vec![(":method", "DELETE"), (":path", path)],
            vec![(":method", "POST"), (":path", "/upload/v1beta/files")],
            vec![
                (":method", "POST"),
                (":path", "/upload/v1beta/files?upload_id="),
            ],
            vec![
                (":method", "POST"),
                (":path", "/upload/f?upload_id=a&upload_id=b"),
            ],
            vec![
                (":method", "POST"),
                (":path", "/v1beta/files?upload_id=abc"),
            ],
            vec![
                (":method", "POST"),
                (":path", path),
                ("upgrade", "websocket"),
            ],
        ] {
            assert!(leg(&pairs).is_none(), "{pairs:?}");
        }
        let off = FilterConfig::parse(br#"{"uploads":{"enabled":false}}"#).unwrap();
        assert!(keyless_leg(&off, &head(&[(":method", "POST"), (":path", path)])).is_none());
    }

    #[test]
    fn a_leg_goes_up_with_no_credential_at_all() {
        let h = head(&[
            (":path", "/upload/f?upload_id=abc&key=&KEY=x"),
            (":authority", "127.0.0.1:10000"),
            ("authorization", "Token ptk_smuggled"),
            ("x-api-key", ""),
            ("x-goog-upload-command", "upload, finalize"),
            (
                "sec-websocket-protocol",
                "openai-insecure-api-key.ptk_smuggled",
            ),
        ]);
        let plan = leg_plan(&h, GOOGLE);
        assert_eq!(
            plan.remove,
            vec!["x-api-key", "authorization", "sec-websocket-protocol"]
        );
        // Every spelling of a credential parameter goes (`KEY=` too), the upload id stays.
        assert_eq!(plan.set_value(":path"), Some("/upload/f?upload_id=abc"));
        assert_eq!(plan.set_value(":authority"), Some(GOOGLE));
        assert!(plan
            .set
            .iter()
            .all(|(n, _)| !CREDENTIAL_HEADERS.contains(&n.as_str())));
        let bare = leg_plan(
            &head(&[(":path", "/upload/f?upload_id=a"), (":authority", GOOGLE)]),
            GOOGLE,
        );
        assert!(bare.remove.is_empty() && bare.set.is_empty());
    }

    #[test]
    fn refusals_are_in_geminis_shape() {
        let pending = PendingLeg {
            upload_id: "x".into(),
            origin: Some("https://app".into()),
        };
        let refused = pending.refuse(Refusal::UnknownUpload);
        assert_eq!(refused.reply.status, 401);
        let body: serde_json::Value = serde_json::from_slice(&refused.reply.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": 401, "message": "unknown or expired upload session", "status": "UNAUTHENTICATED"}})
        );
        assert!(refused
            .reply
            .headers
            .contains(&("access-control-allow-origin".into(), "https://app".into())));
        let status = |r: Refusal| {
            pending
                .refuse(r)
                .reply
                .headers
                .iter()
                .find(|(n, _)| n == UPLOAD_STATUS_HEADER)
                .map(|(_, v)| v.clone())
        };
        for dead in [
            Refusal::UnknownUpload,
            Refusal::Invalid,
            Refusal::Expired,
            Refusal::ProviderNotAllowed,
        ] {
            assert_eq!(status(dead).as_deref(), Some("final"), "{dead:?}");
        }
        for transient in [
            Refusal::TokenServiceUnavailable,
            Refusal::Throttled { retry_after_s: 1 },
            Refusal::ProviderUnconfigured,
        ] {
            assert_eq!(status(transient), None, "{transient:?}");
        }
    }

    fn start_head() -> RequestHead {
        head(&[
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "127.0.0.1:10443"),
            (":path", "/upload/v1beta/files"),
            ("x-goog-upload-protocol", "resumable"),
            ("x-goog-upload-command", "start"),
        ])
    }

    #[test]
    fn only_gemini_upload_requests_are_watched() {
        let c = config();
        let w = watch(&c, &start_head(), HASH, Provider::Gemini).unwrap();
        assert_eq!(
            w.origin.as_ref().map(|o| o.authority.as_str()),
            Some("127.0.0.1:10443")
        );
        assert_eq!(w.leg_id, None);
        assert!(watch(&c, &start_head(), HASH, Provider::Openai).is_none());
        let generate = head(&[(":path", "/v1beta/models/m:generateContent")]);
        assert!(watch(&c, &generate, HASH, Provider::Gemini).is_none());
        let token_leg = head(&[(":path", "//upload/v1beta/files?upload_id=u1")]);
        let w = watch(&c, &token_leg, HASH, Provider::Gemini).unwrap();
        assert_eq!(w.leg_id.as_deref(), Some("u1"));
        assert!(!format!("{w:?}").contains("u1") && !format!("{w:?}").contains(HASH));
        let off = FilterConfig::parse(br#"{"uploads":{"enabled":false}}"#).unwrap();
        assert!(watch(&off, &start_head(), HASH, Provider::Gemini).is_none());
    }

    fn headers<'a>(pairs: &'a [(&'static str, String)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn a_start_response_is_pointed_back_and_its_session_recorded() {
        let w = watch(&config(), &start_head(), HASH, Provider::Gemini).unwrap();
        let url =
            format!("https://{GOOGLE}/upload/v1beta/files?upload_id=U-1&upload_protocol=resumable");
        let resp = [
            ("x-goog-upload-url", url.clone()),
            ("x-goog-upload-control-url", url.clone()),
            ("x-goog-upload-status", "active".to_string()),
        ];
        let edits = response_edits(&w, GOOGLE, Some(200), headers(&resp));
        let pointed =
            "https://127.0.0.1:10443/upload/v1beta/files?upload_id=U-1&upload_protocol=resumable";
        assert_eq!(
            edits.set,
            vec![
                ("x-goog-upload-url".to_string(), pointed.to_string()),
                ("x-goog-upload-control-url".to_string(), pointed.to_string()),
            ]
        );
        assert_eq!(edits.started, vec!["U-1".to_string()]);
        assert_eq!(edits.finished, None);
        assert!(!format!("{edits:?}").contains("U-1"));
        // An error answer still gets its URLs pointed back, but starts nothing.
        let failed = response_edits(&w, GOOGLE, Some(400), headers(&resp));
        assert_eq!(failed.set.len(), 2);
        assert!(failed.started.is_empty());
    }

    #[test]
    fn foreign_urls_are_neither_rewritten_nor_recorded() {
        let w = watch(&config(), &start_head(), HASH, Provider::Gemini).unwrap();
        let resp = [(
            "x-goog-upload-url",
            "https://uploads.example.net/upload/x?upload_id=F".to_string(),
        )];
        assert_eq!(
            response_edits(&w, GOOGLE, Some(200), headers(&resp)),
            ResponseEdits::default()
        );
    }

    #[test]
    fn without_a_usable_origin_the_url_is_left_and_nothing_recorded() {
        let mut w = watch(&config(), &start_head(), HASH, Provider::Gemini).unwrap();
        w.origin = None;
        let resp = [(
            "x-goog-upload-url",
            format!("https://{GOOGLE}/upload/x?upload_id=U"),
        )];
        let edits = response_edits(&w, GOOGLE, Some(200), headers(&resp));
        assert!(edits.set.is_empty() && edits.started.is_empty() && edits.unrewritable);
    }

    #[test]
    fn final_and_cancelled_finish_the_legs_session() {
        let token_leg = head(&[(":path", "/upload/f?upload_id=L")]);
        let w = watch(&config(), &token_leg, HASH, Provider::Gemini).unwrap();
        for (status, done) in [("final", true), ("Cancelled", true), ("active", false)] {
            let resp = [("x-goog-upload-status", status.to_string())];
            let edits = response_edits(&w, GOOGLE, Some(200), headers(&resp));
            assert_eq!(edits.finished.is_some(), done, "{status}");
        }
        let start = watch(&config(), &start_head(), HASH, Provider::Gemini).unwrap();
        let resp = [("x-goog-upload-status", "final".to_string())];
        assert_eq!(
            response_edits(&start, GOOGLE, Some(200), headers(&resp)).finished,
            None
        );
    }
}

//! Every place a client can put a credential or an account choice, in one catalogue, and a
//! walk over every value found there. The rewrite strips all of them; the ephemeral
//! pass-through and the final guard read every value (not just the first of each slot, which
//! is what identification uses).

use std::borrow::Cow;

use crate::query;
use crate::request::RequestHead;
use crate::subprotocol;

/// Headers that can carry a credential inbound: the three slots SDKs fill, Azure OpenAI's
/// `api-key`, and `proxy-authorization` (meant for a proxy, never for the provider). All are
/// removed before the one real key is set. (`for_each_value` matches the same names.)
pub const CREDENTIAL_HEADERS: [&str; 5] = [
    "x-api-key",
    "x-goog-api-key",
    "authorization",
    "api-key",
    "proxy-authorization",
];

/// Headers by which a client picks whose organization, project, billing or quota the
/// operator's key is used for (OpenAI `OpenAI-Organization` / `OpenAI-Project`, Google
/// `x-goog-user-project` / `x-goog-quota-user`). Removed unless the operator sets them
/// (`providers.<name>.request_headers`).
pub const ACCOUNT_HEADERS: [&str; 4] = [
    "openai-organization",
    "openai-project",
    "x-goog-user-project",
    "x-goog-quota-user",
];

/// Headers that cut a response down to the fields a client names (Google's
/// `X-Goog-FieldMask`, the header form of the `fields` system parameter): asking for
/// `candidates` only drops `usageMetadata`, and the call would go unmetered. Always removed.
pub const RESPONSE_MASK_HEADERS: [&str; 1] = ["x-goog-fieldmask"];

/// Where a credential value was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place<'a> {
    /// A value of this credential header (one of [`CREDENTIAL_HEADERS`]), verbatim.
    Header(&'static str),
    /// A query parameter with this normalised credential name, value decoded.
    Query(&'a str),
    /// A `Sec-WebSocket-Protocol` key entry, value without its prefix.
    Subprotocol,
}

/// Calls `found` with every value of every credential slot: each value of each credential
/// header, each credential query parameter under any spelling (empty or not), each key entry
/// of each subprotocol offer (upgrade or not: the header goes upstream either way). Values are
/// borrowed from the head unless decoding changed them. One pass over the head: this runs on
/// every forwarded request.
pub fn for_each_value<'h>(head: &'h RequestHead, mut found: impl FnMut(Place<'_>, Cow<'h, str>)) {
    for (name, value) in head.iter() {
        // A `match` on the name compiles to length checks first: most headers cost one.
        let slot = match name {
            "x-api-key" => "x-api-key",
            "x-goog-api-key" => "x-goog-api-key",
            "authorization" => "authorization",
            "api-key" => "api-key",
            "proxy-authorization" => "proxy-authorization",
            "sec-websocket-protocol" => {
                for entry in subprotocol::entries(value).filter_map(subprotocol::key_entry_value) {
                    found(Place::Subprotocol, Cow::Borrowed(entry));
                }
                continue;
            }
            _ => continue,
        };
        found(Place::Header(slot), Cow::Borrowed(value));
    }
    if let Some(query) = head.query() {
        for (name, value) in query::params(query) {
            if query::is_credential_param(&name) {
                found(Place::Query(&name), query::decode_value(value));
            }
        }
        // `key=tok;en` is one value to a server that splits on `&` only.
        for (name, value) in query::whole_credential_values(query) {
            found(Place::Query(&name), query::decode_value(value));
        }
    }
}

/// Shortest value the final guard looks for: the token-service issues no token shorter
/// (custom tokens need 12 characters, generated ones are 36), and shorter values would match
/// ordinary header text.
pub const MIN_GUARDED_LEN: usize = 12;

fn is_separator(c: char) -> bool {
    c.is_whitespace() || c == ',' || c == ';'
}

/// The credential after an auth scheme (`Bearer x y` gives `x y`), if there is a scheme.
fn after_scheme(text: &str) -> Option<&str> {
    text.split_once(char::is_whitespace)
        .map(|(_, rest)| rest.trim())
}

/// Calls `add` with each way a credential value can hold a token: whole; after its auth
/// scheme; each comma-joined element (Envoy joins a repeated header with `,`) whole and after
/// its scheme; each piece between separators. Custom tokens may contain spaces, commas or
/// semicolons, so the unsplit forms matter as much as the pieces. Plain loops, no iterator
/// adapters: this runs on every forwarded request.
fn candidates<'t>(text: &'t str, mut add: impl FnMut(&'t str)) {
    let whole = text.trim();
    add(whole);
    if !whole.contains(is_separator) {
        return;
    }
    if let Some(rest) = after_scheme(whole) {
        add(rest);
    }
    if whole.contains(',') {
        for element in whole.split(',') {
            let element = element.trim();
            add(element);
            if let Some(rest) = after_scheme(element) {
                add(rest);
            }
        }
    }
    if whole.is_ascii() {
        // The usual case, split byte-wise (every ASCII separator is one byte, so each piece
        // is still ASCII text).
        let pieces = whole.as_bytes().split(|b| is_separator(char::from(*b)));
        for piece in pieces.filter_map(|p| std::str::from_utf8(p).ok()) {
            add(piece);
        }
    } else {
        for piece in whole.split(is_separator) {
            add(piece);
        }
    }
}

/// Most distinct values the final guard searches for. A real client sends one to three; a
/// request with more is refused rather than searched.
pub const MAX_GUARDED_VALUES: usize = 32;

/// Longest credential value (a header value as sent, a query value decoded, a subprotocol
/// entry without its prefix) the final guard searches for: a real key or token is well under
/// it (generated tokens are 36 bytes, provider keys under 200, custom tokens at most 256
/// characters); a request with a longer one is refused rather than searched.
pub const MAX_GUARDED_LEN: usize = 2048;

/// Most bytes of credential forms (every form of every value, repeats counted) one request may
/// hold: the bound on what the final guard builds its search from and compares while it
/// collects. A request with more is refused rather than searched.
pub const MAX_GUARDED_BYTES: usize = 8 * 1024;

/// Why the final guard refuses a request's credential values instead of searching for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Excess {
    /// More than [`MAX_GUARDED_VALUES`] distinct values.
    Values,
    /// A value longer than [`MAX_GUARDED_LEN`].
    Length,
    /// More than [`MAX_GUARDED_BYTES`] of forms in all.
    Bytes,
}

/// The values the final guard must not find upstream: every credential value in each of the
/// forms it can hold a token (see `candidates`), at least [`MIN_GUARDED_LEN`] bytes long,
/// without duplicates, borrowed from the head where possible; or why there are too many or
/// too large ones to search for. Collection stops at the first excess. The work is linear in
/// the credential bytes: at most [`MAX_GUARDED_BYTES`] of forms, each compared with at most
/// [`MAX_GUARDED_VALUES`] kept ones.
pub fn guarded_values(head: &RequestHead) -> Result<Vec<Cow<'_, str>>, Excess> {
    let mut collect = Collect {
        out: Vec::new(),
        bytes: 0,
        excess: None,
    };
    for_each_value(head, |_, value| {
        if collect.excess.is_some() {
            return;
        }
        if value.len() > MAX_GUARDED_LEN {
            collect.excess = Some(Excess::Length);
            return;
        }
        match value {
            Cow::Borrowed(text) => candidates(text, |c| {
                if collect.wants(c) {
                    collect.out.push(Cow::Borrowed(c));
                }
            }),
            Cow::Owned(text) => candidates(&text, |c| {
                if collect.wants(c) {
                    collect.out.push(Cow::Owned(c.to_string()));
                }
            }),
        }
    });
    match collect.excess {
        Some(excess) => Err(excess),
        None => Ok(collect.out),
    }
}

/// The forms kept so far, the bytes of every form seen, and the first excess.
struct Collect<'h> {
    out: Vec<Cow<'h, str>>,
    bytes: usize,
    excess: Option<Excess>,
}

impl Collect<'_> {
    /// Counts one form; true when it is to be kept (long enough, new, within the bounds).
    fn wants(&mut self, form: &str) -> bool {
        if self.excess.is_some() || form.len() < MIN_GUARDED_LEN {
            return false;
        }
        self.bytes = self.bytes.saturating_add(form.len());
        if self.bytes > MAX_GUARDED_BYTES {
            self.excess = Some(Excess::Bytes);
            return false;
        }
        if self.out.iter().any(|kept| kept == form) {
            return false;
        }
        if self.out.len() >= MAX_GUARDED_VALUES {
            self.excess = Some(Excess::Values);
            return false;
        }
        true
    }
}

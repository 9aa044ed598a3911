//! The 403 that refuses a request of a limited token, in the provider's error shape, with
//! code `model_not_allowed` and a message naming the model (or why it could not be read).

use crate::cors::decorate;
use crate::dialect::ErrorShape;
use crate::pipeline::Refused;
use crate::refusal::{error_json, LocalReply, Refusal};

/// Longest model name quoted back in a message (the client sent it; keep replies small).
const QUOTED: usize = 128;

/// Why a limited token's request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRefusal {
    /// The request names this model, which the allow-list does not hold.
    NotAllowed(String),
    /// The route spends, but the filter cannot read its model (why).
    Unreadable(&'static str),
    /// The body names no model, or not in a form the filter reads.
    BodyUnreadable,
    /// The body's model cannot be read before it goes upstream: the request-body hold filter
    /// is not installed in front of this Envoy's router.
    NoHold,
}

impl ModelRefusal {
    /// The client-facing message.
    pub fn message(&self) -> String {
        match self {
            ModelRefusal::NotAllowed(model) => {
                let quoted: String = model.chars().take(QUOTED).collect();
                format!("model {quoted:?} is not allowed: this token's model allow-list refused it")
            }
            ModelRefusal::Unreadable(why) => format!(
                "this token has a model allow-list, and this request is {why}, whose model \
                 this proxy cannot check"
            ),
            ModelRefusal::BodyUnreadable => "this token has a model allow-list, and the request \
                 body names no model this proxy can read (a JSON object with one \"model\" string)"
                .to_string(),
            ModelRefusal::NoHold => "this token has a model allow-list, and this proxy cannot \
                 read a request body's model before forwarding it (the request-body hold filter \
                 is not installed)"
                .to_string(),
        }
    }

    /// The refusal as a local reply: 403 in `shape` (plain text on a WebSocket handshake),
    /// CORS-decorated for `origin`.
    pub fn refused(&self, shape: ErrorShape, websocket: bool, origin: Option<&str>) -> Refused {
        let refusal = Refusal::ModelNotAllowed;
        let message = self.message();
        let reply = if websocket {
            LocalReply {
                status: refusal.status(),
                headers: vec![(
                    "content-type".to_string(),
                    "text/plain; charset=utf-8".to_string(),
                )],
                body: message.into_bytes(),
            }
        } else {
            let body = error_json(shape, refusal.status(), &message, refusal.code());
            let reply = LocalReply {
                status: refusal.status(),
                headers: vec![("content-type".to_string(), "application/json".to_string())],
                body: body.to_string().into_bytes(),
            };
            decorate(reply, origin)
        };
        Refused { refusal, reply }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_refusal_is_a_403_in_each_provider_shape_naming_the_model() {
        let refusal = ModelRefusal::NotAllowed("gpt-4o".into());
        let json = |shape| {
            let reply = refusal.refused(shape, false, None).reply;
            assert_eq!(reply.status, 403);
            serde_json::from_slice::<serde_json::Value>(&reply.body).unwrap()
        };
        let openai = json(ErrorShape::Openai);
        assert_eq!(openai["error"]["code"], "model_not_allowed");
        assert_eq!(openai["error"]["type"], "permission_error");
        let message = openai["error"]["message"].as_str().unwrap();
        assert!(message.contains("\"gpt-4o\"") && message.contains("allow-list"));
        assert_eq!(
            json(ErrorShape::Anthropic)["error"]["type"],
            "permission_error"
        );
        assert_eq!(
            json(ErrorShape::Gemini)["error"]["status"],
            "PERMISSION_DENIED"
        );
        let ws = refusal.refused(ErrorShape::Openai, true, None).reply;
        assert_eq!((ws.status, ws.body.starts_with(b"model")), (403, true));
    }
}

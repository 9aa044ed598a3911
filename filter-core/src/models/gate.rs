//! The allow-list applied to one allowed request (from a fresh check or the verdict cache
//! alike): open, refused at its headers, or held until its body is read. A body is only read
//! when the request-body hold filter is installed after ptk (`limits.body_hold` in the plugin
//! configuration, which the renderer sets with the filter): ptk marks the request with
//! [`HOLD_HEADER`], the hold filter removes the mark and keeps the headers from the router
//! until the body is complete, so the provider sees nothing of a refused request.

use ptk_wire::Limits;
use serde::Deserialize;

use super::body::{read_body_model, BodyModelRead};
use super::matcher::allows;
use super::refusal::ModelRefusal;
use super::routes::{model_source, BodyModel, ModelSource};
use crate::budget::context::default_context_tokens;
use crate::dialect::ErrorShape;
use crate::pipeline::{PendingCheck, Refused};
use crate::request::RequestHead;

/// The request header that asks the hold filter to hold this request until its body is in
/// (removed by the hold filter: never forwarded).
pub const HOLD_HEADER: &str = "x-ptk-hold-body";

/// The plugin configuration's `limits` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// The request-body hold filter is installed after ptk (set by the renderer that installs
    /// it). Without it a limited token's request whose model is in its body is refused, and a
    /// budgeted token's request is estimated with the default output cap.
    pub body_hold: bool,
    /// A budgeted token's request that names no output cap (`max_tokens`, …) is estimated to
    /// produce this many output tokens (`budget::estimate`).
    pub default_output_tokens: u64,
    /// The same default per provider name (`openai`, `anthropic`, a configured provider …),
    /// over `default_output_tokens`.
    pub output_tokens: std::collections::BTreeMap<String, u64>,
    /// The input tokens a budgeted token's request is estimated at when its body references
    /// input it does not carry (`budget::referenced`), per provider name, over the provider's
    /// largest context window (`budget::context`).
    pub context_tokens: std::collections::BTreeMap<String, u64>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            body_hold: false,
            default_output_tokens: 4096,
            output_tokens: std::collections::BTreeMap::new(),
            context_tokens: std::collections::BTreeMap::new(),
        }
    }
}

impl LimitsConfig {
    /// The output tokens assumed for a request to `provider` that names no cap.
    pub fn default_output(&self, provider: ptk_wire::Provider) -> u64 {
        let named = self.output_tokens.get(provider.as_str());
        named.copied().unwrap_or(self.default_output_tokens)
    }

    /// The estimate bounds of a request to `provider` whose body cannot say.
    pub fn bounds(&self, provider: ptk_wire::Provider) -> crate::budget::estimate::Bounds {
        let context = self.context_tokens.get(provider.as_str()).copied();
        crate::budget::estimate::Bounds {
            default_output: self.default_output(provider),
            context: context.unwrap_or_else(|| default_context_tokens(provider)),
        }
    }
}

/// What the allow-list makes of one allowed request.
#[derive(Debug)]
pub enum Gate {
    /// No allow-list, a route that spends nothing, or a named model the list allows.
    Open,
    /// Forward the headers marked for the hold filter; decide on the body.
    Hold(Box<BodyGate>),
    /// Refuse it now (403).
    Refuse(ModelRefusal),
}

/// A request held until its body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyGate {
    models: Vec<String>,
    at: BodyModel,
    shape: ErrorShape,
    origin: Option<String>,
}

/// Applies `limits` to the request `pending` describes.
pub fn gate(
    limits: Option<&Limits>,
    body_hold: bool,
    pending: &PendingCheck,
    head: &RequestHead,
) -> Gate {
    let Some(models) = limits.and_then(|l| l.models.as_ref()) else {
        return Gate::Open;
    };
    match model_source(pending.identified.dialect, head) {
        ModelSource::NotSpending => Gate::Open,
        ModelSource::Named(model) if allows(models, &model) => Gate::Open,
        ModelSource::Named(model) => Gate::Refuse(ModelRefusal::NotAllowed(model)),
        ModelSource::Unreadable(why) => Gate::Refuse(ModelRefusal::Unreadable(why)),
        ModelSource::Body(_) if !body_hold => Gate::Refuse(ModelRefusal::NoHold),
        ModelSource::Body(at) => Gate::Hold(Box::new(BodyGate {
            models: models.clone(),
            at,
            shape: pending.identified.dialect.error_shape(),
            origin: pending.origin.clone(),
        })),
    }
}

impl BodyGate {
    /// Decides on the whole body: `Ok` to forward it, or the refusal to answer.
    pub fn decide(&self, body: &[u8]) -> Result<(), Refused> {
        let refusal = match read_body_model(body, self.at) {
            BodyModelRead::Model(model) => {
                // Gemini's bodies (cachedContents) name `models/…`; the list names models.
                let name = model.strip_prefix("models/").unwrap_or(&model);
                if allows(&self.models, name) {
                    return Ok(());
                }
                ModelRefusal::NotAllowed(model)
            }
            BodyModelRead::Absent | BodyModelRead::Unreadable => ModelRefusal::BodyUnreadable,
        };
        Err(refusal.refused(self.shape, false, self.origin.as_deref()))
    }
}

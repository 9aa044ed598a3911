//! The access-log fields of a forwarded request (`crate::access_log`): its provider and token
//! when it is forwarded (only the provider for a bound credential), the model and usage when
//! its metered response ends normally (a response cut short is recorded as incomplete for the
//! usage report only: Envoy may already have written its log line by then).

use ptk_wire::{Provider, TokenUsage};

use crate::access_log::{
    model_field, token_field, usage_field, MODEL_FIELD, PROVIDER_FIELD, TOKEN_FIELD, USAGE_FIELD,
};
use crate::flow::{Host, Level};
use crate::pipeline::PendingCheck;

/// Sets the fields, warning once if the host refused one (the request goes on: the log only
/// misses them).
fn set_fields(host: &mut impl Host, fields: &[(&str, &str)]) {
    let all_set = fields.iter().fold(true, |ok, (name, value)| {
        host.set_log_field(name, value) && ok
    });
    if !all_set {
        host.log(Level::Warn, "ptk filter: could not set an access-log field");
    }
}

/// A request checked with a token is forwarded: its provider and token.
pub(super) fn log_forwarded(host: &mut impl Host, pending: &PendingCheck) {
    let provider = pending.identified.provider.as_str();
    let token = token_field(&pending.identified.token, &pending.hash);
    set_fields(host, &[(PROVIDER_FIELD, provider), (TOKEN_FIELD, token)]);
}

/// A request forwarded with a credential bound to a token (an upload leg, a client secret):
/// its provider. The token stays `-`: only its hash is known here, not whether it was
/// generated (a custom token's hash prefix must never be logged).
pub(super) fn log_bound(host: &mut impl Host, provider: &Provider) {
    set_fields(host, &[(PROVIDER_FIELD, provider.as_str())]);
}

/// A metered response ended: the model it named and its usage.
pub(super) fn log_usage(host: &mut impl Host, model: &str, usage: &TokenUsage, complete: bool) {
    let model = model_field(model);
    let usage = usage_field(usage, complete);
    set_fields(host, &[(MODEL_FIELD, &model), (USAGE_FIELD, &usage)]);
}

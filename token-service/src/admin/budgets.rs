//! Budgets in the admin API: a token's budgets as they stand (`{limit, period, spent, reserved,
//! remaining, resets_at}` per budget, with the live reservations of this service) and their
//! change, and the groups. Reads need a session; writes pass the origin and CSRF checks.
//!
//! Bodies: `token_budget` `"N/PERIOD"`, `cost_budget` `"USD/PERIOD"`, `tpm` a number, `group`
//! a name; absent = unchanged, `null` = removed (the same words as the CLI's options).

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::AdminError;
use super::guard::{Session, WriteSession};
use super::input::{json_body, parse_hash, present};
use super::AdminState;
use crate::budget::{
    parse_cost_budget, parse_group, parse_token_budget, Admission, BudgetInputError, BudgetPatch,
};
use crate::store::{GroupDelete, StoreError};

/// Body of the budget writes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetBody {
    #[serde(default, deserialize_with = "present")]
    token_budget: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    cost_budget: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    tpm: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    group: Option<Option<String>>,
    /// Only `POST /admin/api/groups`.
    name: Option<String>,
}

fn bad(e: BudgetInputError) -> AdminError {
    AdminError::BadRequest(e.to_string())
}

fn patch_of(body: &BudgetBody) -> Result<BudgetPatch, AdminError> {
    let tokens = match &body.token_budget {
        Some(Some(text)) => Some(Some(parse_token_budget(text).map_err(bad)?)),
        Some(None) => Some(None),
        None => None,
    };
    let cost = match &body.cost_budget {
        Some(Some(text)) => Some(Some(parse_cost_budget(text).map_err(bad)?)),
        Some(None) => Some(None),
        None => None,
    };
    if body.tpm == Some(Some(0)) {
        return Err(AdminError::BadRequest("tpm must be positive".into()));
    }
    let group = match &body.group {
        Some(Some(name)) => Some(Some(parse_group(name).map_err(bad)?)),
        Some(None) => Some(None),
        None => None,
    };
    Ok(BudgetPatch {
        tokens,
        cost,
        tpm: body.tpm,
        group,
    })
}

fn admission(state: &AdminState) -> Result<&Admission, AdminError> {
    state
        .budgets
        .as_deref()
        .ok_or_else(|| AdminError::Internal("budgets are not configured".into()))
}

fn path_text(segment: Result<Path<String>, PathRejection>) -> Result<String, AdminError> {
    segment
        .map(|Path(s)| s)
        .map_err(|_| AdminError::BadRequest("bad path segment".into()))
}

async fn token_budgets(state: &AdminState, hash: &str) -> Result<Value, AdminError> {
    let record = state.store.get(hash).await?.ok_or(AdminError::NotFound)?;
    let admission = admission(state)?;
    let group = admission.store().group_of(hash).await?;
    let budgets = admission
        .status(hash, &record.providers, Utc::now())
        .await
        .map_err(|e| AdminError::Internal(e.to_string()))?;
    Ok(json!({"token": hash, "group": group, "budgets": budgets}))
}

/// `GET /admin/api/tokens/{hash}/budgets`: `{token, group, budgets: [{scope, group?, kind,
/// period, limit, spent, reserved, remaining, resets_at}]}` (cost figures in nanodollars).
pub async fn of_token(
    _: Session,
    State(state): State<AdminState>,
    hash: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, AdminError> {
    let hash = path_text(hash)?;
    let hash = parse_hash(&hash)?;
    Ok(Json(token_budgets(&state, hash).await?))
}

/// `PATCH /admin/api/tokens/{hash}/budgets`: sets or removes the token's budgets and group.
pub async fn patch_token(
    _: WriteSession,
    State(state): State<AdminState>,
    hash: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    let hash = path_text(hash)?;
    let hash = parse_hash(&hash)?;
    let body: BudgetBody = json_body(&headers, &body)?;
    let patch = patch_of(&body)?;
    if patch.is_empty() || body.name.is_some() {
        return Err(AdminError::BadRequest(
            "name at least one of token_budget, cost_budget, tpm, group".into(),
        ));
    }
    let store = admission(&state)?.store();
    let done = store.patch_token_budgets(hash, &patch).await;
    admission(&state)?.forget(hash);
    state
        .metrics
        .admin_action("budgets", matches!(done, Ok(Some(_))));
    match done {
        Ok(Some(_)) => {}
        Ok(None) => return Err(AdminError::NotFound),
        Err(StoreError::Backend(message)) if message.starts_with("no group named") => {
            return Err(AdminError::BadRequest(message))
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(hash = %format_args!("{:.12}", hash), "admin: token budgets updated");
    Ok(Json(token_budgets(&state, hash).await?))
}

fn groups_json(groups: &[crate::store::GroupRecord]) -> Value {
    let all: Vec<Value> = groups
        .iter()
        .map(|g| {
            json!({"name": g.name, "budgets": g.budgets, "members": g.members,
                   "created_at": g.created_at})
        })
        .collect();
    json!({ "groups": all })
}

/// `GET /admin/api/groups`: `{groups: [{name, budgets, members, created_at}]}`.
pub async fn list_groups(
    _: Session,
    State(state): State<AdminState>,
) -> Result<Json<Value>, AdminError> {
    let groups = admission(&state)?.store().groups().await?;
    Ok(Json(groups_json(&groups)))
}

/// `POST /admin/api/groups`: `{name, token_budget?, cost_budget?, tpm?}`; 409 if it exists.
pub async fn create_group(
    _: WriteSession,
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let body: BudgetBody = json_body(&headers, &body)?;
    let name = parse_group(body.name.as_deref().unwrap_or_default()).map_err(bad)?;
    let patch = patch_of(&body)?;
    if patch.group.is_some() {
        return Err(AdminError::BadRequest("a group has no group".into()));
    }
    let budgets = patch.apply(Default::default());
    let now = crate::expiry::format_timestamp(Utc::now());
    let created = admission(&state)?
        .store()
        .create_group(&name, &budgets, &now)
        .await;
    state.metrics.admin_action("group_create", created.is_ok());
    match created {
        Err(StoreError::Duplicate) => Err(AdminError::Refused(format!(
            "a group named {name:?} exists already"
        ))),
        other => other.map(|()| StatusCode::CREATED).map_err(Into::into),
    }
}

/// `PATCH /admin/api/groups/{name}`: changes a group's budgets.
pub async fn patch_group(
    _: WriteSession,
    State(state): State<AdminState>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, AdminError> {
    let name = parse_group(&path_text(name)?).map_err(bad)?;
    let body: BudgetBody = json_body(&headers, &body)?;
    let patch = patch_of(&body)?;
    if patch.is_empty() || patch.group.is_some() || body.name.is_some() {
        return Err(AdminError::BadRequest(
            "name at least one of token_budget, cost_budget, tpm".into(),
        ));
    }
    let updated = admission(&state)?
        .store()
        .update_group(&name, &patch)
        .await?;
    state.metrics.admin_action("group_update", updated);
    if !updated {
        return Err(AdminError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /admin/api/groups/{name}`: 409 while tokens belong to it.
pub async fn delete_group(
    _: WriteSession,
    State(state): State<AdminState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, AdminError> {
    let name = parse_group(&path_text(name)?).map_err(bad)?;
    let deleted = admission(&state)?.store().delete_group(&name).await?;
    state
        .metrics
        .admin_action("group_delete", deleted == GroupDelete::Deleted);
    match deleted {
        GroupDelete::Deleted => Ok(StatusCode::NO_CONTENT),
        GroupDelete::NotFound => Err(AdminError::NotFound),
        GroupDelete::HasMembers(n) => Err(AdminError::Refused(format!(
            "{n} token(s) belong to group {name:?}: move them out first"
        ))),
    }
}

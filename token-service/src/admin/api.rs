//! `/admin/api/tokens`: the JSON token API. Reads need a session; writes also pass the
//! origin and CSRF checks ([`WriteSession`]).

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::Utc;
use secrecy::ExposeSecret as _;

use super::error::AdminError;
use super::guard::{Session, WriteSession};
use super::input::{parse_create, parse_hash, parse_patch};
use super::paging::{PageQuery, PageRequest};
use super::AdminState;
use crate::new_token::{create_token, CreateError, CreatedToken};
use crate::token_view::{Created, TokenList, TokenView};

/// The `{hash}` segment; a segment axum cannot decode is a 400 like any other bad id.
fn path_hash(hash: Result<Path<String>, PathRejection>) -> Result<String, AdminError> {
    hash.map(|Path(h)| h)
        .map_err(|_| AdminError::BadRequest("bad token id".into()))
}

/// `GET /admin/api/tokens[?limit=N&after=CURSOR]`: one page of tokens, newest first, and
/// the cursor of the next page (`null` on the last).
pub async fn list(
    _: Session,
    State(state): State<AdminState>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<TokenList>, AdminError> {
    let request = PageRequest::parse(query)?;
    let page = state
        .store
        .list_page(request.limit, request.after.as_ref())
        .await?;
    let now = Utc::now();
    let tokens = page
        .tokens
        .iter()
        .map(|l| TokenView::of_listing(l, now))
        .collect();
    let next = page.next.map(|c| c.encode());
    Ok(Json(TokenList { tokens, next }))
}

/// `POST /admin/api/tokens`: creates a token and returns its plaintext, once.
pub async fn create(
    _: WriteSession,
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Created>), AdminError> {
    let new = parse_create(&headers, &body)?;
    let now = Utc::now();
    let created = create_token(state.store.as_ref(), new, now).await;
    state.metrics.admin_action("create", created.is_ok());
    let CreatedToken { plaintext, record } = created.map_err(|e| match e {
        CreateError::Duplicate => AdminError::Conflict,
        CreateError::Store(e) => AdminError::from(e),
        CreateError::Random(e) => AdminError::Internal(e.to_string()),
    })?;
    tracing::info!(hash = %format_args!("{:.12}", record.hash), "admin: token created");
    let created = Created {
        token: plaintext.expose_secret().to_owned(),
        view: TokenView::new(&record, None, now),
    };
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /admin/api/tokens/{hash}`.
pub async fn get_one(
    _: Session,
    State(state): State<AdminState>,
    hash: Result<Path<String>, PathRejection>,
) -> Result<Json<TokenView>, AdminError> {
    let hash = path_hash(hash)?;
    let hash = parse_hash(&hash)?;
    let listing = state
        .store
        .get_listing(hash)
        .await?
        .ok_or(AdminError::NotFound)?;
    Ok(Json(TokenView::of_listing(&listing, Utc::now())))
}

/// `PATCH /admin/api/tokens/{hash}`: status, expiry and/or rate limit, atomically. Returns
/// the token as committed by this request.
pub async fn patch(
    _: WriteSession,
    State(state): State<AdminState>,
    hash: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<TokenView>, AdminError> {
    let hash = path_hash(hash)?;
    let hash = parse_hash(&hash)?;
    let patch = parse_patch(&headers, &body)?;
    let updated = state.store.update(hash, &patch).await;
    state
        .metrics
        .admin_action("update", matches!(updated, Ok(Some(_))));
    let record = updated?.ok_or(AdminError::NotFound)?;
    tracing::info!(hash = %format_args!("{:.12}", hash), "admin: token updated");
    // The stamp is display-only; failing to read it must not fail a committed patch.
    let last_used = match state.store.get_listing(hash).await {
        Ok(Some(listing)) => listing.last_used,
        _ => None,
    };
    Ok(Json(TokenView::new(&record, last_used, Utc::now())))
}

/// `DELETE /admin/api/tokens/{hash}`: removes the token and its stamp; 404 if absent.
pub async fn delete(
    _: WriteSession,
    State(state): State<AdminState>,
    hash: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, AdminError> {
    let hash = path_hash(hash)?;
    let hash = parse_hash(&hash)?;
    let deleted = state.store.delete(hash).await;
    state
        .metrics
        .admin_action("delete", matches!(deleted, Ok(true)));
    if !deleted? {
        return Err(AdminError::NotFound);
    }
    tracing::info!(hash = %format_args!("{:.12}", hash), "admin: token deleted");
    Ok(StatusCode::NO_CONTENT)
}

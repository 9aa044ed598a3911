//! The token table rows, rendered on the server for the first page load and for the
//! dashboard's refreshes (`GET /admin/fragments/tokens`), so rows have one renderer. Both
//! show one page; a refresh re-reads only the page on screen.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderValue;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup};

use super::error::AdminError;
use super::guard::Session;
use super::paging::{PageQuery, PageRequest, NEXT_CURSOR_HEADER};
use super::{AdminState, ProxyInfo};
use crate::expiry::display_time;
use crate::store::{TokenListing, TokenStatus};
use crate::token_view::display_state;

/// A timestamp as `<time>`: UTC text on the server, rewritten to the browser's locale by the
/// script.
fn time(stored: &str) -> Markup {
    html! { time datetime=(stored) { (display_time(stored)) } }
}

fn row(listing: &TokenListing, about: &ProxyInfo, now: DateTime<Utc>) -> Markup {
    let r = &listing.record;
    let state = display_state(r, now);
    let dim = if state == "active" {
        None
    } else {
        Some(format!("dim {state}"))
    };
    let expires = r.expires_at.as_deref().filter(|e| !e.trim().is_empty());
    let models = r.models.as_ref().map(|m| m.join(", "));
    let (toggle_label, next) = match r.status {
        TokenStatus::Active => ("disable", "disabled"),
        TokenStatus::Disabled => ("enable", "active"),
    };
    html! {
        tr id=(format!("tok-{}", r.hash)) data-hash=(r.hash) data-state=(state)
            data-expires=[expires] class=[dim] {
            td.label { (r.label) }
            td.last4 { code { "…" (r.last4) } }
            // The CLI takes the hash or a unique prefix: the first 12 shown, the whole copied.
            td.hash {
                code title=(r.hash) { (r.hash.get(..12).unwrap_or(&r.hash)) "…" }
                " "
                button type="button" data-action="copy-hash" title="copy the full hash" { "copy" }
            }
            td.scopes { @for p in &r.providers { span class=(format!("pill {}", p.as_str())) { (p.as_str()) } } }
            td.status { span class=(format!("state {state}")) { (state) } }
            td.rate-limit { (about.rate_limit_text(r.rate_limit)) }
            // Model names and pool names are shown as text (maud escapes them); the editors
            // start from the data- attributes.
            td.models data-models=[models.as_deref()] {
                span.models-text { @match &models { Some(m) => (m), None => "any" } }
                " "
                button type="button" data-action="edit-models" { "edit" }
                input.text-editor data-field="models" aria-label="new model allow-list" hidden;
            }
            td.key-pool data-key-pool=[r.key_pool.as_deref()] {
                span.key-pool-text { @match &r.key_pool { Some(p) => (p), None => "default" } }
                " "
                button type="button" data-action="edit-key-pool" { "edit" }
                input.text-editor data-field="key_pool" aria-label="new key pool" hidden;
            }
            td { (time(&r.created_at)) }
            td.expires {
                span.expiry-text {
                    @match expires { Some(at) => (time(at)), None => "never" }
                    @if state == "expired" { " " strong.badge { "expired" } }
                }
                " "
                button type="button" data-action="edit-expiry" { "edit" }
                @if expires.is_some() { " " button type="button" data-action="clear-expiry" { "clear" } }
                input.expiry-editor type="datetime-local" aria-label="new expiry" hidden;
            }
            td.last-used { @match &listing.last_used { Some(at) => (time(at)), None => "never" } }
            td.actions {
                button type="button" data-action="toggle" data-next=(next) { (toggle_label) }
                " "
                button type="button" data-action="delete" { "delete" }
                " "
                button type="button" data-action="usage" title="this token's metered usage" { "usage" }
            }
        }
    }
}

/// All rows, or the empty-state row.
pub fn rows(listings: &[TokenListing], about: &ProxyInfo, now: DateTime<Utc>) -> Markup {
    html! {
        @if listings.is_empty() {
            tr.empty { td colspan="12" { "No tokens yet." } }
        }
        @for listing in listings { (row(listing, about, now)) }
    }
}

/// `GET /admin/fragments/tokens[?limit=N&after=CURSOR]`: one page of rows as an HTML
/// fragment; the next page's cursor rides in the `x-next-cursor` header (absent on the last).
pub async fn fragment(
    _: Session,
    State(state): State<AdminState>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, AdminError> {
    let request = PageRequest::parse(query)?;
    let page = state
        .store
        .list_page(request.limit, request.after.as_ref())
        .await?;
    let html = rows(&page.tokens, &state.about, Utc::now()).into_string();
    let mut response = Html(html).into_response();
    // A cursor is base64url, '.', and hex: always a valid header value.
    if let Some(next) = page
        .next
        .and_then(|c| HeaderValue::from_str(&c.encode()).ok())
    {
        response.headers_mut().insert(NEXT_CURSOR_HEADER, next);
    }
    Ok(response)
}

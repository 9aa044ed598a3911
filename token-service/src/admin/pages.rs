//! Server-rendered pages (maud): the login page and the dashboard shell. The token rows come
//! from [`super::rows`]; behaviour is in `assets/admin.js` (tokens) and `assets/usage.js` (the
//! usage view, which fills the empty usage panels below from the JSON usage API), loaded from
//! `/admin/static/`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use maud::{html, Markup, DOCTYPE};
use ptk_wire::providers::{Sdk, FACTS};
use secrecy::ExposeSecret as _;

use super::error::AdminError;
use super::guard::session_of;
use super::keys;
use super::paging::DEFAULT_PAGE_LIMIT;
use super::request_info::RequestInfo;
use super::rows::rows;
use super::{AdminState, ProxyInfo};
use crate::store::PageCursor;

/// Placeholder the dashboard script replaces with a freshly created token in the snippets.
pub const TOKEN_PLACEHOLDER: &str = "__PTK_TOKEN__";

fn layout(title: &str, head_extra: Markup, body: Markup) -> Html<String> {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href="/admin/static/admin.css";
                (head_extra)
            }
            body { (body) }
        }
    };
    Html(page.into_string())
}

/// The login page, with an optional error. A plain POST form: it works without JavaScript and
/// never puts the password in a URL. Says where the admin secret is (a path or a variable
/// name, never the secret).
pub fn login_page(error: Option<&str>, about: &ProxyInfo) -> Html<String> {
    layout(
        "ptk admin - sign in",
        html! {},
        html! {
            main.login {
                h1 { "ptk admin" }
                form method="post" action="/admin/login" {
                    label {
                        "Admin secret"
                        input type="password" name="password" autocomplete="current-password"
                            required autofocus;
                    }
                    button type="submit" { "Sign in" }
                }
                p #login-error role="alert" { @if let Some(e) = error { (e) } }
                p.hint #secret-hint { (about.secret_hint()) }
            }
        },
    )
}

/// Ready-to-paste client snippets for the proxy at `base` (Python SDKs), one per client entry
/// of the provider registry (`ptk_wire::providers`), each with the provider scope it needs:
/// the script shows only those of the created token's scopes.
fn snippets(base: &str) -> Vec<(&'static str, &'static str, String)> {
    FACTS
        .iter()
        .flat_map(|facts| {
            facts.clients.iter().map(|client| {
                let url = format!("{base}{}", client.base_path);
                (
                    facts.provider.as_str(),
                    client.title,
                    snippet(client.sdk, &url),
                )
            })
        })
        .collect()
}

/// The snippet of one SDK pointed at `url`.
fn snippet(sdk: Sdk, url: &str) -> String {
    let t = TOKEN_PLACEHOLDER;
    match sdk {
        Sdk::Openai => {
            format!(
                "from openai import OpenAI\nclient = OpenAI(base_url=\"{url}\", api_key=\"{t}\")"
            )
        }
        Sdk::Anthropic => format!(
            "import anthropic\nclient = anthropic.Anthropic(base_url=\"{url}\", api_key=\"{t}\")"
        ),
        Sdk::GoogleGenai => format!(
            "from google import genai\nclient = genai.Client(api_key=\"{t}\", \
             http_options={{\"base_url\": \"{url}\"}})"
        ),
    }
}

/// `pools`: the named key pools, offered as suggestions for the `key_pool` field.
fn create_form(pools: &[&str]) -> Markup {
    html! {
        form #create {
            label { "Label" input name="label" required placeholder="alice-laptop"; }
            fieldset.scopes {
                legend { "Scopes" }
                // The first provider is checked: a token needs at least one scope.
                @for (i, facts) in FACTS.iter().enumerate() {
                    label {
                        input type="checkbox" name="providers" value=(facts.provider.as_str()) checked[i == 0];
                        (facts.title)
                    }
                }
                // Configured providers (PTK_PROVIDERS) by name; no snippet: their path prefix
                // is in the filter's configuration.
                @for configured in ptk_wire::providers::configured() {
                    @let name = configured.provider.as_str();
                    label { input type="checkbox" name="providers" value=(name); (name) }
                }
            }
            label { "Expires (optional)" input type="datetime-local" name="expires"; }
            label {
                "Custom token (optional, 12 to 256 chars: letters, digits, -_.~!$'()*:@/)"
                input name="token" autocomplete="off" placeholder="blank = generate";
            }
            label {
                "Models (optional, comma-separated; * matches any run of characters)"
                input name="models" autocomplete="off" placeholder="blank = any model";
            }
            label {
                "Key pool (optional)"
                input name="key_pool" autocomplete="off" list="pool-names" placeholder="blank = the default pool";
            }
            datalist #pool-names { @for pool in pools { option value=(pool); } }
            fieldset.rate {
                legend { "Rate limit (optional)" }
                input type="number" name="rl_count" min="1" placeholder="requests" aria-label="requests";
                " per "
                input type="number" name="rl_window" min="1" placeholder="seconds" aria-label="seconds";
                " s"
            }
            button type="submit" { "Create token" }
        }
    }
}

fn created_panel(base: &str) -> Markup {
    html! {
        section #created hidden {
            h2 { "Token created" }
            p { "Copy it now: it is shown once, only its hash is stored." }
            p.token-line { code #created-token {} " " button #copy-token type="button" { "copy" } }
            h3 { "Point a client at the proxy" }
            @for (provider, name, text) in snippets(base) {
                div.snippet-block data-provider=(provider) {
                    h4 { (name) }
                    pre.snippet data-template=(text) {}
                }
            }
        }
    }
}

/// The usage panels, empty: `usage.js` fills them (the fleet's on load, a token's on its
/// "usage" button) with `textContent` only, as model names are the provider's (or a client's)
/// text.
fn usage_panels() -> Markup {
    html! {
        section #usage {
            h2 { "Usage" }
            div.usage-controls {
                label.inline { "Since (UTC day) " input #usage-since type="date" required; }
                " "
                button #usage-refresh type="button" { "refresh" }
                " "
                a #usage-csv href="/admin/api/usage.csv" download { "download CSV" }
            }
            p.hint #usage-caption {
                "Input includes cached tokens, output includes reasoning. "
                strong { "Incomplete" } ": responses whose usage was only partly seen (an \
                aborted stream, an upstream error, a disconnect, a response whose usage could \
                not be read); their counts are what was seen. "
                strong { "Unknown price" } ": a model the price table does not know; its \
                tokens count, its cost is left out of the total."
            }
            p.empty #usage-empty hidden {}
            div #usage-fleet hidden {
                h3 { "Per token, costliest first" }
                table #usage-tokens {}
                p.hint #usage-tokens-more hidden {}
                h3 { "Per model, costliest first" }
                table #usage-models {}
            }
        }
        section #token-usage hidden {
            h2 {
                "Usage of " span #token-usage-name {} " "
                button #token-usage-close type="button" { "close" }
            }
            div #token-budgets hidden {
                h3 { "Budgets" }
                p.empty #token-budgets-none hidden {
                    "No budgets: neither the token nor its group has one."
                }
                table #token-budgets-table {}
            }
            p.empty #token-usage-empty hidden {}
            div #token-usage-tables hidden {
                h3 { "Per model" }
                table #token-usage-models {}
                h3 { "Per day (UTC)" }
                table #token-usage-days {}
            }
        }
    }
}

/// `GET /admin`: the dashboard with a session, the login page without one.
pub async fn dashboard(
    State(state): State<AdminState>,
    info: RequestInfo,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    let Some(session) = session_of(&state, &headers).await? else {
        return Ok(login_page(None, &state.about).into_response());
    };
    let csrf = state.keys.csrf_token(session.cookie.expose_secret());
    let base = match &state.public_url {
        Some(url) => url.to_string(),
        None => info
            .origin()
            .unwrap_or_else(|| "http://127.0.0.1:10000".to_owned()),
    };
    let page = state.store.list_page(DEFAULT_PAGE_LIMIT, None).await?;
    let next = page.next.as_ref().map(PageCursor::encode);
    let head = html! { meta name="csrf-token" content=(csrf); };
    let key_views = keys::views(&state).await;
    let ring = state.key_ring.current();
    let body = html! {
        header {
            h1 { "ptk admin" }
            form method="post" action="/admin/logout" {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { "sign out" }
            }
        }
        div #flash role="alert" hidden {}
        main {
            (state.about.panel(&ring.configured()))
            section { h2 { "New token" } (create_form(&ring.pool_names())) }
            (created_panel(&base))
            section {
                h2 { "Tokens" }
                table #tokens {
                    thead { tr {
                        th { "Label" } th { "Token" } th { "Hash" } th { "Scopes" } th { "Status" }
                        th { "Rate limit" } th { "Models" } th { "Key pool" } th { "Created" }
                        th { "Expires" } th { "Last used" } th { "Actions" }
                    } }
                    tbody #rows { (rows(&page.tokens, &state.about, Utc::now())) }
                }
                nav #pager {
                    button #prev-page type="button" disabled { "‹ newer" }
                    " "
                    button #next-page type="button" data-after=[next.as_deref()] disabled[next.is_none()] { "older ›" }
                }
            }
            (keys::panel(&key_views))
            (usage_panels())
        }
        script src="/admin/static/admin.js" {}
        script src="/admin/static/usage.js" {}
    };
    Ok(layout("ptk admin", head, body).into_response())
}

//! What the dashboard tells an operator about this proxy: which providers have real keys
//! (names only, never a key), the default rate limit, and where the admin secret lives.

use maud::{html, Markup};
use ptk_wire::Provider;

use crate::ratelimit::RateLimit;

/// Facts about this token-service for the dashboard. Holds no secret.
#[derive(Debug, Clone)]
pub struct ProxyInfo {
    /// The quota of tokens without their own.
    pub default_rate_limit: RateLimit,
    /// The file the admin secret was read from (`ADMIN_SECRET_FILE`), if any.
    pub secret_file: Option<String>,
}

fn quota(rl: RateLimit) -> String {
    format!("{} per {} s", rl.limit, rl.window_s)
}

impl ProxyInfo {
    /// The rate-limit cell of a token: its own limit, or the default one.
    pub fn rate_limit_text(&self, own: Option<RateLimit>) -> String {
        match own {
            Some(rl) => quota(rl),
            None => format!("default ({})", quota(self.default_rate_limit)),
        }
    }

    /// Where to find the admin secret, for the sign-in page (a file path, or the variable).
    pub fn secret_hint(&self) -> Markup {
        match &self.secret_file {
            // A relative path (make run's `data/admin-secret`) helps a developer find it; an
            // absolute one would tell every visitor of the sign-in page the host's layout.
            Some(path) if std::path::Path::new(path).is_relative() => html! {
                "The admin secret is in the file " code { (path) } " on the token-service's host"
                " (" code { "make run" } " and " code { "make demo" } " generate it there)."
            },
            Some(_) => html! {
                "The admin secret is in the file the token-service's " code { "ADMIN_SECRET_FILE" }
                " setting names."
            },
            None => html! {
                "The admin secret is the token-service's " code { "ADMIN_SECRET" } " setting."
            },
        }
    }

    /// The dashboard's "This proxy" panel, with `providers_with_keys` as the live key ring has
    /// them (a reload adds or removes providers without a restart).
    pub fn panel(&self, providers_with_keys: &[&'static str]) -> Markup {
        html! {
            section #about {
                h2 { "This proxy" }
                ul {
                    li #provider-keys {
                        "Real provider keys: "
                        @for provider in Provider::ALL {
                            @let name = provider.as_str();
                            @if providers_with_keys.contains(&name) {
                                span class=(format!("pill key-on {name}")) data-provider=(name) { (name) " ✓" }
                            } @else {
                                span class=(format!("pill key-off {name}")) data-provider=(name)
                                    title="no real key: requests answer 503 provider not configured" {
                                    (name) " — no key"
                                }
                            }
                            " "
                        }
                    }
                    li { "Default rate limit: " (quota(self.default_rate_limit)) " (tokens without their own)" }
                    li #secret-hint { (self.secret_hint()) }
                    li {
                        "CLI: " code { "token-service tokens list" } " on the same store; "
                        "commands take the hash or any unique prefix of 8+ characters."
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(secret_file: Option<&str>) -> ProxyInfo {
        ProxyInfo {
            default_rate_limit: RateLimit {
                limit: 100,
                window_s: 60,
            },
            secret_file: secret_file.map(str::to_owned),
        }
    }

    #[test]
    fn panel_marks_providers_with_and_without_keys() {
        let html = info(None).panel(&["openai", "gemini"]).into_string();
        assert!(html.contains("key-on openai"), "{html}");
        assert!(html.contains("key-off anthropic"), "{html}");
        assert!(html.contains("key-on gemini"), "{html}");
        assert!(html.contains("Default rate limit: 100 per 60 s"), "{html}");
        assert!(html.contains("ADMIN_SECRET"), "{html}");
    }

    #[test]
    fn secret_hint_names_the_file() {
        let html = info(Some("data/admin-secret")).secret_hint().into_string();
        assert!(html.contains("<code>data/admin-secret</code>"), "{html}");
        // An absolute path is the host's layout: not shown to visitors of the sign-in page.
        let html = info(Some("/etc/ptk/admin-secret"))
            .secret_hint()
            .into_string();
        assert!(!html.contains("/etc/ptk"), "{html}");
        assert!(html.contains("ADMIN_SECRET_FILE"), "{html}");
    }
}

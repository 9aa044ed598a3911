//! Helpers for the admin black-box tests: URLs on the admin listener, a logged-in client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

use super::{TestApp, ADMIN_SECRET, SECRET};

/// A logged-in admin: the session cookie and its CSRF token, sent by hand so tests see
/// exactly what goes over the wire.
#[derive(Clone)]
pub struct Admin {
    pub base: String,
    pub client: reqwest::Client,
    pub cookie: String,
    pub csrf: String,
}

/// The `name=value` part of a `Set-Cookie` header.
pub fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_owned()
}

impl TestApp {
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr.expect("admin listener"))
    }

    /// `POST /admin/login` with a JSON body. With `client_ip`, the request comes as Envoy's
    /// `/admin` routes send it: `x-forwarded-for: <client_ip>` plus the check secret that
    /// makes the service believe that header. Without, a direct call from this loopback peer.
    pub async fn login_json(&self, password: &str, client_ip: Option<&str>) -> Response {
        match client_ip {
            Some(ip) => {
                self.login_with_headers(
                    password,
                    &[
                        ("x-forwarded-for", ip),
                        (ptk_wire::CHECK_SECRET_HEADER, SECRET),
                    ],
                )
                .await
            }
            None => self.login_with_headers(password, &[]).await,
        }
    }

    /// `POST /admin/login` with a JSON body and exactly these extra headers.
    pub async fn login_with_headers(&self, password: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = self
            .client
            .post(self.admin_url("/admin/login"))
            .json(&serde_json::json!({ "password": password }));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send().await.unwrap()
    }

    /// Logs in with the right secret and returns the session.
    pub async fn login(&self) -> Admin {
        let response = self.login_json(ADMIN_SECRET, None).await;
        assert_eq!(response.status(), StatusCode::OK);
        let set_cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = response.json().await.unwrap();
        Admin {
            base: self.admin_url(""),
            client: self.client.clone(),
            cookie: cookie_pair(&set_cookie),
            csrf: body["csrf_token"].as_str().unwrap().to_owned(),
        }
    }
}

impl Admin {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the session cookie and the CSRF header.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.unwrap()
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut req = self.request(method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    /// Creates a token; asserts 201 and returns the response body.
    pub async fn create(&self, body: Value) -> Value {
        let response = self
            .send(Method::POST, "/admin/api/tokens", Some(body))
            .await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    pub async fn patch(&self, hash: &str, body: Value) -> Response {
        self.send(
            Method::PATCH,
            &format!("/admin/api/tokens/{hash}"),
            Some(body),
        )
        .await
    }

    pub async fn token(&self, hash: &str) -> Response {
        self.get(&format!("/admin/api/tokens/{hash}")).await
    }
}

/// The `{"error":{"code","message"}}` of a response, with its status.
pub async fn error_of(response: Response) -> (StatusCode, String, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["error"]["code"].as_str().unwrap().to_owned(),
        body["error"]["message"].as_str().unwrap().to_owned(),
    )
}

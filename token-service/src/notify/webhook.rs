//! Delivery: a bounded queue in front of one task that claims each event, POSTs it to the
//! operator's webhook (signed when a secret is set) and retries transient failures with
//! exponential backoff. Nothing here ever waits on the caller's side.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;
use tokio::sync::{mpsc, Semaphore};

use super::claims::{Claims, MemoryClaims};
use super::event::BudgetEvent;
use crate::metrics::Metrics;

/// Header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` when a signing
/// secret is set: the receiver recomputes it to know the event is the service's and recent.
pub const SIGNATURE_HEADER: &str = "x-ptk-signature";

/// Events waiting for delivery; past this, new ones are dropped (and counted), never waited on.
const QUEUE: usize = 1024;

/// Deliveries in flight at once (each may be sleeping between retries).
const IN_FLIGHT: usize = 8;

/// Where and how to deliver. `Debug` shows neither the URL (chat webhooks carry their secret
/// in it) nor the signing secret.
#[derive(Clone)]
pub struct WebhookSettings {
    /// The endpoint (`http(s)://…`).
    pub url: SecretString,
    /// Signs each body when set ([`SIGNATURE_HEADER`]).
    pub secret: Option<SecretString>,
    /// Thresholds in percent of a budget's limit.
    pub thresholds: Vec<u8>,
    /// Attempts per event (the first included).
    pub attempts: u32,
    /// Wait before the second attempt; doubled before each later one.
    pub first_backoff: Duration,
    /// Per-attempt timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &"[redacted]")
            .field("signed", &self.secret.is_some())
            .field("thresholds", &self.thresholds)
            .field("attempts", &self.attempts)
            .finish()
    }
}

/// The handle settlements use. Cheap to clone; a disabled one ignores everything.
#[derive(Clone)]
pub struct Notifier {
    queue: Option<mpsc::Sender<BudgetEvent>>,
    thresholds: Arc<[u8]>,
    metrics: Arc<Metrics>,
    /// Crossings this replica already queued: settlements see a reached threshold again on
    /// every later report of the period, and only the first is worth a claim.
    queued: Arc<MemoryClaims>,
}

impl Notifier {
    /// A notifier that sends nothing (no webhook configured).
    pub fn disabled(metrics: Arc<Metrics>) -> Notifier {
        Notifier {
            queue: None,
            thresholds: Arc::from(Vec::new()),
            metrics,
            queued: Arc::default(),
        }
    }

    /// Starts the delivery task on the current runtime.
    pub fn start(
        settings: WebhookSettings,
        claims: Arc<dyn Claims>,
        metrics: Arc<Metrics>,
    ) -> Result<Notifier, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let (queue, events) = mpsc::channel(QUEUE);
        let thresholds = Arc::from(settings.thresholds.clone());
        let delivery = Delivery {
            client,
            settings: Arc::new(settings),
            claims,
            metrics: metrics.clone(),
        };
        tokio::spawn(delivery.run(events));
        Ok(Notifier {
            queue: Some(queue),
            thresholds,
            metrics,
            queued: Arc::default(),
        })
    }

    /// The thresholds to look for (empty when disabled).
    pub fn thresholds(&self) -> &[u8] {
        &self.thresholds
    }

    /// Queues `event` for delivery and returns at once, unless this replica queued the same
    /// crossing before (then nothing); a full queue drops it (counted, logged).
    pub fn notify(&self, event: BudgetEvent) {
        let Some(queue) = &self.queue else { return };
        let ttl = claim_ttl(&event, Utc::now());
        if !self.queued.claim_now(&event.claim_key(), ttl) {
            return;
        }
        if queue.try_send(event).is_err() {
            self.metrics.notification("dropped");
            tracing::warn!("budget notification queue full; dropping a notification");
        }
    }
}

struct Delivery {
    client: reqwest::Client,
    settings: Arc<WebhookSettings>,
    claims: Arc<dyn Claims>,
    metrics: Arc<Metrics>,
}

/// What one attempt came to.
enum Attempt {
    Delivered,
    /// Worth another try (a connection failure, a timeout, 408, 429, 5xx).
    Retry(String),
    /// Not worth another (any other status).
    GiveUp(String),
}

/// How long the claim of `event` lasts: past its period's reset (a day's margin), so a replica
/// never sends a crossing another already sent in the same period.
fn claim_ttl(event: &BudgetEvent, now: DateTime<Utc>) -> Duration {
    DateTime::parse_from_rfc3339(&event.resets_at)
        .ok()
        .and_then(|at| (at.with_timezone(&Utc) - now).to_std().ok())
        .unwrap_or(Duration::from_secs(32 * 86_400))
        .saturating_add(Duration::from_secs(86_400))
}

impl Delivery {
    async fn run(self, mut events: mpsc::Receiver<BudgetEvent>) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        while let Some(event) = events.recv().await {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let this = this.clone();
            tokio::spawn(async move {
                this.deliver(event).await;
                drop(slot);
            });
        }
    }

    async fn deliver(&self, event: BudgetEvent) {
        if !self
            .claims
            .claim(&event.claim_key(), claim_ttl(&event, Utc::now()))
            .await
        {
            self.metrics.notification("duplicate");
            return;
        }
        let body = event.body().to_string();
        let mut backoff = self.settings.first_backoff;
        for attempt in 1..=self.settings.attempts.max(1) {
            match self.attempt(&body).await {
                Attempt::Delivered => {
                    self.metrics.notification("delivered");
                    return;
                }
                Attempt::GiveUp(why) => {
                    self.metrics.notification("failed");
                    tracing::warn!(%why, "budget notification refused by the webhook; not retried");
                    return;
                }
                Attempt::Retry(why) if attempt < self.settings.attempts => {
                    tracing::info!(%why, attempt, "budget notification failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                }
                Attempt::Retry(why) => {
                    self.metrics.notification("failed");
                    tracing::warn!(%why, attempt, "budget notification failed; giving up");
                }
            }
        }
    }

    async fn attempt(&self, body: &str) -> Attempt {
        let mut request = self
            .client
            .post(self.settings.url.expose_secret())
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(secret) = &self.settings.secret {
            request = request.header(
                SIGNATURE_HEADER,
                signature(secret, Utc::now().timestamp(), body),
            );
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    Attempt::Delivered
                } else if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
                    Attempt::Retry(format!("status {status}"))
                } else {
                    Attempt::GiveUp(format!("status {status}"))
                }
            }
            // reqwest's error text names the host and the cause, never the URL's path or query
            // (`without_url`), where chat webhooks keep their secret.
            Err(e) => Attempt::Retry(e.without_url().to_string()),
        }
    }
}

/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "<unix>.<body>")>`.
pub fn signature(secret: &SecretString, unix: i64, body: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{unix}.{body}").as_bytes());
    format!("t={unix},v1={}", hex::encode(mac.finalize().into_bytes()))
}

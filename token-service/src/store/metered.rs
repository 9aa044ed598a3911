//! A [`TokenStore`] (and a [`SessionStore`]) that counts its backend's failures in [`Metrics`] by operation, so every
//! caller (checks, admin API, health probes, last-used stamps) is counted in one place.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::{
    Page, PageCursor, SessionStore, StoreError, TokenListing, TokenPatch, TokenRecord, TokenStore,
};
use crate::metrics::Metrics;

/// Wraps a store; answers exactly as it does.
pub struct MeteredStore {
    inner: Arc<dyn TokenStore>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    /// Counts `inner`'s failures in `metrics`.
    pub fn new(inner: Arc<dyn TokenStore>, metrics: Arc<Metrics>) -> MeteredStore {
        MeteredStore { inner, metrics }
    }

    fn count<T>(
        &self,
        operation: &'static str,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A duplicate hash is an answer (409), not a failing store.
        if let Err(e) = &result {
            if !matches!(e, StoreError::Duplicate) {
                self.metrics.store_error(operation);
            }
        }
        result
    }
}

#[async_trait]
impl TokenStore for MeteredStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.count("ping", self.inner.ping().await)
    }

    async fn get(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.count("get", self.inner.get(hash).await)
    }

    async fn insert(&self, record: &TokenRecord) -> Result<(), StoreError> {
        self.count("insert", self.inner.insert(record).await)
    }

    async fn list(&self) -> Result<Vec<TokenListing>, StoreError> {
        self.count("list", self.inner.list().await)
    }

    async fn list_page(
        &self,
        limit: usize,
        after: Option<&PageCursor>,
    ) -> Result<Page, StoreError> {
        self.count("list_page", self.inner.list_page(limit, after).await)
    }

    async fn hashes_with_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let result = self.inner.hashes_with_prefix(prefix, limit).await;
        self.count("hashes_with_prefix", result)
    }

    async fn get_listing(&self, hash: &str) -> Result<Option<TokenListing>, StoreError> {
        self.count("get_listing", self.inner.get_listing(hash).await)
    }

    async fn update(
        &self,
        hash: &str,
        patch: &TokenPatch,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.count("update", self.inner.update(hash, patch).await)
    }

    async fn labels(&self, hashes: &[String]) -> Result<HashMap<String, String>, StoreError> {
        self.count("labels", self.inner.labels(hashes).await)
    }

    async fn delete(&self, hash: &str) -> Result<bool, StoreError> {
        self.count("delete", self.inner.delete(hash).await)
    }

    async fn stamp_last_used(&self, hash: &str, at: &str) -> Result<(), StoreError> {
        self.count(
            "stamp_last_used",
            self.inner.stamp_last_used(hash, at).await,
        )
    }
}

/// Wraps a session store; answers exactly as it does, counting failures like [`MeteredStore`].
pub struct MeteredSessions {
    inner: Arc<dyn SessionStore>,
    metrics: Arc<Metrics>,
}

impl MeteredSessions {
    /// Counts `inner`'s failures in `metrics`.
    pub fn new(inner: Arc<dyn SessionStore>, metrics: Arc<Metrics>) -> MeteredSessions {
        MeteredSessions { inner, metrics }
    }

    fn count<T>(
        &self,
        operation: &'static str,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if result.is_err() {
            self.metrics.store_error(operation);
        }
        result
    }
}

#[async_trait]
impl SessionStore for MeteredSessions {
    async fn revoke_session(&self, id: &str, until: &str, now: &str) -> Result<(), StoreError> {
        self.count(
            "revoke_session",
            self.inner.revoke_session(id, until, now).await,
        )
    }

    async fn session_revoked(&self, id: &str) -> Result<bool, StoreError> {
        self.count("session_revoked", self.inner.session_revoked(id).await)
    }
}

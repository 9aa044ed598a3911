//! The live provider keys, swappable while the service runs: `SIGHUP` or the admin API's
//! `POST /admin/api/keys/reload` re-reads the keys file (and the environment) into a new
//! [`ProviderKeys`] and swaps it in one atomic pointer store.
//!
//! Why `arc-swap`: a check reads the key set on every request; `ArcSwap::load` is a lock-free
//! read, so a reload never makes a check wait, and a check that loaded the old set finishes
//! with it (in-flight requests are unaffected). A check loads the set once, so it sees the
//! old keys or the new ones, never a mix. A failed reload leaves the old set in place.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::keys::{KeysFileError, ProviderKeys};

/// The current key set and where to reload it from.
pub struct KeyRing {
    current: ArcSwap<ProviderKeys>,
    file: Option<PathBuf>,
    /// Keys from the environment, read once at start-up (a process's environment does not
    /// change while it runs); they win over the file, as at start-up. `None`: a fixed set.
    env: Option<ProviderKeys>,
}

impl KeyRing {
    /// A ring holding `initial`, reloading from `file` (if any) with the start-up
    /// environment's keys `env` layered on top, the same layering as start-up
    /// ([`ProviderKeys::load`]). Only the keys file rotates keys without a restart.
    pub fn new(initial: ProviderKeys, file: Option<PathBuf>, env: ProviderKeys) -> KeyRing {
        KeyRing {
            current: ArcSwap::from_pointee(initial),
            file,
            env: Some(env),
        }
    }

    /// A ring that always holds `keys` (reloading keeps them): tests, embedded uses.
    pub fn fixed(keys: ProviderKeys) -> KeyRing {
        KeyRing {
            current: ArcSwap::from_pointee(keys),
            file: None,
            env: None,
        }
    }

    /// The key set now. Hold the returned `Arc` for the whole request: one consistent set.
    pub fn current(&self) -> Arc<ProviderKeys> {
        self.current.load_full()
    }

    /// The keys file reloads read, if any.
    pub fn file(&self) -> Option<&std::path::Path> {
        self.file.as_deref()
    }

    /// Re-reads the keys file and the environment and swaps the result in. On error the old
    /// set stays and the error (file and line, never a value) says why. Returns the
    /// providers that now have a key.
    pub fn reload(&self) -> Result<Vec<&'static str>, KeysFileError> {
        let Some(env) = &self.env else {
            return Ok(self.current.load().configured());
        };
        let fresh = ProviderKeys::load(self.file.as_deref(), |_| None)?
            .overridden_by(env)
            .validated()?;
        let configured = fresh.configured();
        self.current.store(Arc::new(fresh));
        Ok(configured)
    }
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current.load())
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::keys::expose;
    use ptk_wire::Provider;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn generation(n: u32) -> String {
        format!("OPENAI_API_KEY=sk-gen-{n}\nANTHROPIC_API_KEY=sk-ant-gen-{n}\n")
    }

    #[test]
    fn readers_see_one_whole_key_set_while_reloads_swap_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys.env");
        std::fs::write(&file, generation(0)).unwrap();
        let initial = ProviderKeys::load(Some(&file), |_| None).unwrap();
        let ring = Arc::new(KeyRing::new(
            initial,
            Some(file.clone()),
            ProviderKeys::none(),
        ));
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (ring, done) = (ring.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut seen = 0u32;
                    while !done.load(Ordering::SeqCst) {
                        let keys = ring.current();
                        let openai = expose(keys.get(Provider::Openai).unwrap());
                        let anthropic = expose(keys.get(Provider::Anthropic).unwrap());
                        let n: u32 = openai.trim_start_matches("sk-gen-").parse().unwrap();
                        // Never a mix: both keys of one request come from the same reload.
                        assert_eq!(anthropic, format!("sk-ant-gen-{n}"));
                        assert!(n >= seen, "went back from {seen} to {n}");
                        seen = n;
                    }
                    // After the last reload, every reader sees the last set.
                    let last = expose(ring.current().get(Provider::Openai).unwrap());
                    assert!(seen <= 200);
                    last
                })
            })
            .collect();
        for n in 1..=200 {
            std::fs::write(&file, generation(n)).unwrap();
            assert_eq!(ring.reload().unwrap(), vec!["openai", "anthropic"]);
        }
        done.store(true, Ordering::SeqCst);
        for reader in readers {
            assert_eq!(reader.join().unwrap(), "sk-gen-200");
        }
    }

    #[test]
    fn a_failed_reload_keeps_the_old_keys_and_says_why_without_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys.env");
        std::fs::write(&file, generation(1)).unwrap();
        let ring = KeyRing::new(
            ProviderKeys::load(Some(&file), |_| None).unwrap(),
            Some(file.clone()),
            ProviderKeys::none(),
        );
        std::fs::write(&file, "OPENAI_API_KEY=sk-new\nsk-pasted-secret-value\n").unwrap();
        let err = ring.reload().unwrap_err().to_string();
        assert_eq!(err, "keys file line 2: expected NAME=value");
        std::fs::remove_file(&file).unwrap();
        assert!(ring.reload().unwrap_err().to_string().contains("keys.env"));
        let keys = ring.current();
        assert_eq!(expose(keys.get(Provider::Openai).unwrap()), "sk-gen-1");
    }

    #[test]
    fn the_environment_still_wins_after_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys.env");
        std::fs::write(&file, "OPENAI_API_KEY=from-file\n").unwrap();
        let env = ProviderKeys::none().with(Provider::Gemini, "g-env");
        let ring = KeyRing::new(ProviderKeys::none(), Some(file), env);
        assert_eq!(ring.reload().unwrap(), vec!["openai", "gemini"]);
        assert!(!format!("{ring:?}").contains("from-file"));
    }
}

//! A test double of proxy-wasm shared data with Envoy's exact semantics
//! (proxy-wasm-cpp-host `SharedData`): one global CAS counter, a CAS ignored for absent keys.
//! Shared by the tests of every module that keeps state in shared data.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use crate::shared_data::{GetError, SetError, SharedData, Stored};

type Hook = Box<dyn FnOnce(&SharedDataDouble)>;

/// Shared data as Envoy keeps it. `before_next_set` runs a hook once before the next set, to
/// interleave another worker's write between a get and a set.
#[derive(Default)]
pub struct SharedDataDouble {
    map: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    counter: RefCell<u32>,
    sets: Cell<usize>,
    before_set: RefCell<Option<Hook>>,
}

impl SharedDataDouble {
    fn next_cas(&self) -> u32 {
        let mut c = self.counter.borrow_mut();
        *c = c.wrapping_add(1);
        *c
    }

    /// A write with Envoy's rules that neither counts nor runs the hook (the "other worker").
    pub fn raw_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
        let next = self.next_cas();
        let mut map = self.map.borrow_mut();
        match map.get_mut(key) {
            Some(slot) => {
                if matches!(cas, Some(c) if c != 0 && c != slot.1) {
                    return Err(SetError::CasMismatch);
                }
                *slot = (value.to_vec(), next);
            }
            None => {
                map.insert(key.to_string(), (value.to_vec(), next));
            }
        }
        Ok(())
    }

    /// Runs `hook` once, just before the next [`SharedData::set`].
    pub fn before_next_set(&self, hook: impl FnOnce(&SharedDataDouble) + 'static) {
        *self.before_set.borrow_mut() = Some(Box::new(hook));
    }

    /// Every key present.
    pub fn keys(&self) -> Vec<String> {
        self.map.borrow().keys().cloned().collect()
    }

    /// The value of a key.
    pub fn value(&self, key: &str) -> Option<Vec<u8>> {
        self.map.borrow().get(key).map(|(v, _)| v.clone())
    }

    /// The CAS of a key.
    pub fn cas(&self, key: &str) -> Option<u32> {
        self.map.borrow().get(key).map(|(_, c)| *c)
    }

    /// Sets made through the trait so far.
    pub fn sets(&self) -> usize {
        self.sets.get()
    }
}

impl SharedData for SharedDataDouble {
    fn get(&self, key: &str) -> Result<Stored, GetError> {
        Ok(self
            .map
            .borrow()
            .get(key)
            .map_or((None, None), |(v, c)| (Some(v.clone()), Some(*c))))
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
        let sets = self.sets.get();
        self.sets.set(sets.saturating_add(1));
        let hook = self.before_set.borrow_mut().take();
        if let Some(hook) = hook {
            hook(self);
        }
        self.raw_set(key, value, cas)
    }
}

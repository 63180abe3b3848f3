//! Short-lived records in memory, with expiry: challenges and tokens of the embedded store.
//!
//! Losing them on restart is safe by design: a lost challenge is asked again, and a lost token can no longer
//! be redeemed (never redeemed twice).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::model::{UnixTime, now};

/// A map whose entries vanish at their expiry time, bounded in size.
pub struct ExpiringMap<V> {
    entries: Mutex<HashMap<String, (UnixTime, V)>>,
    capacity: usize,
}

impl<V: Clone> ExpiringMap<V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Inserts unless the map is full of live entries; expired ones are swept first when it looks full.
    pub fn insert(&self, key: String, expires_at: UnixTime, value: V) -> Result<(), ()> {
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            let t = now();
            entries.retain(|_, (exp, _)| *exp > t);
            if entries.len() >= self.capacity {
                return Err(());
            }
        }
        entries.insert(key, (expires_at, value));
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<V> {
        let entries = self.lock();
        entries
            .get(key)
            .filter(|(exp, _)| *exp > now())
            .map(|(_, v)| v.clone())
    }

    /// Removes and returns a live entry. The mutex makes this the single point where one caller wins.
    pub fn take(&self, key: &str) -> Option<V> {
        let mut entries = self.lock();
        entries
            .remove(key)
            .filter(|(exp, _)| *exp > now())
            .map(|(_, v)| v)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (UnixTime, V)>> {
        // A panic while holding the lock cannot leave the map half-updated (each operation is one call on
        // the HashMap), so a poisoned lock is still safe to use.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_taken_once() {
        let map = ExpiringMap::new(10);
        map.insert("a".into(), now() + 60, 1).unwrap();
        assert_eq!(map.get("a"), Some(1));
        assert_eq!(map.take("a"), Some(1));
        assert_eq!(map.take("a"), None);
    }

    #[test]
    fn expired_entries_are_invisible_and_make_room() {
        let map = ExpiringMap::new(1);
        map.insert("old".into(), now() - 1, 1).unwrap();
        assert_eq!(map.get("old"), None);
        map.insert("new".into(), now() + 60, 2).unwrap();
        assert!(map.insert("more".into(), now() + 60, 3).is_err());
        assert_eq!(map.take("new"), Some(2));
    }
}

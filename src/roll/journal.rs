//! The state of a run shared by the sets it works on concurrently, saved
//! with group commit: every step's result is on disk before the set takes
//! its next step, but a save started while others were waiting covers them
//! all, so a thousand sets stepping at once cost a handful of writes, not a
//! thousand.

use std::sync::Mutex;

use super::state::{SetState, State, StateError, StateStore};

pub struct Journal<'a> {
    store: &'a StateStore,
    /// The state as the sets left it, and a counter of changes made to it.
    current: Mutex<(State, u64)>,
    /// The change counter of the last save; held while saving.
    saved: tokio::sync::Mutex<u64>,
}

impl<'a> Journal<'a> {
    pub fn new(store: &'a StateStore, state: State) -> Self {
        Journal {
            store,
            current: Mutex::new((state, 0)),
            saved: tokio::sync::Mutex::new(0),
        }
    }

    pub fn store(&self) -> &StateStore {
        self.store
    }

    /// The stored state of one set (empty for a set never seen).
    pub fn get(&self, set: &str) -> SetState {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current.0.sets.get(set).cloned().unwrap_or_default()
    }

    /// Records a set's new state and returns once it is on disk.
    pub async fn put(&self, set: &str, state: &SetState) -> Result<(), StateError> {
        let change = {
            let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            current.0.sets.insert(set.to_string(), state.clone());
            current.1 += 1;
            current.1
        };
        let mut saved = self.saved.lock().await;
        if *saved >= change {
            return Ok(()); // a save that started after our change covered it
        }
        let (snapshot, covers) = {
            let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            (current.0.clone(), current.1)
        };
        self.store.save(&snapshot)?;
        *saved = covers;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roll::state::Timestamp;

    #[tokio::test]
    async fn concurrent_puts_all_reach_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let journal = Journal::new(&store, store.load().unwrap());
        let puts = (0..20).map(|i| {
            let journal = &journal;
            async move {
                let mut set = SetState::default();
                set.record(Timestamp::from_unix_secs(i), format!("step {i}"));
                journal.put(&format!("set{i}"), &set).await.unwrap();
            }
        });
        futures_util::future::join_all(puts).await;
        let on_disk = store.load().unwrap();
        assert_eq!(on_disk.sets.len(), 20);
        assert_eq!(journal.get("set7").timeline[0].what, "step 7");
    }
}

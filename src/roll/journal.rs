//! The state of a run shared by the sets it works on concurrently: each
//! set reads its state once and writes its own file after every step, so
//! the step's result is on disk before the set takes the next one.

use std::sync::Mutex;

use super::state::{SetState, State, StateError, StateStore};

pub struct Journal<'a> {
    store: &'a StateStore,
    /// The state as the sets left it.
    current: Mutex<State>,
}

impl<'a> Journal<'a> {
    pub fn new(store: &'a StateStore, state: State) -> Self {
        Journal {
            store,
            current: Mutex::new(state),
        }
    }

    pub fn store(&self) -> &StateStore {
        self.store
    }

    /// The stored state of one set (empty for a set never seen).
    pub fn get(&self, set: &str) -> SetState {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current.sets.get(set).cloned().unwrap_or_default()
    }

    /// Records a set's new state and returns once it is on disk.
    pub async fn put(&self, set: &str, state: &SetState) -> Result<(), StateError> {
        self.store.save_set(set, state)?;
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current.sets.insert(set.to_string(), state.clone());
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

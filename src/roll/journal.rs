//! The state of a run shared by the sets it works on concurrently: each
//! set reads its state once and writes its own file after every step, so
//! the step's result is on disk before the set takes the next one.

use std::sync::{Arc, Mutex};

use super::state::{SetState, State, StateError, StateStore};

pub struct Journal {
    store: Arc<StateStore>,
    /// The state as the sets left it.
    current: Mutex<State>,
}

impl Journal {
    pub fn new(store: Arc<StateStore>, state: State) -> Self {
        Journal {
            store,
            current: Mutex::new(state),
        }
    }

    pub fn store(&self) -> &StateStore {
        &self.store
    }

    /// The stored state of one set (empty for a set never seen).
    pub fn get(&self, set: &str) -> SetState {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current.sets.get(set).cloned().unwrap_or_default()
    }

    /// Records a set's new state and returns once it is on disk. The write
    /// (two fsyncs) runs on a blocking thread, not on the runtime's.
    pub async fn put(&self, set: &str, state: &SetState) -> Result<(), StateError> {
        let (store, name, content) = (self.store.clone(), set.to_string(), state.clone());
        tokio::task::spawn_blocking(move || store.save_set(&name, &content))
            .await
            .unwrap_or_else(|e| {
                Err(StateError::Write {
                    file: super::state::set_file(self.store.dir(), set),
                    why: format!("the writing thread failed: {e}"),
                })
            })?;
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
        let store = Arc::new(StateStore::open(dir.path()).unwrap());
        let journal = Journal::new(store.clone(), store.load().unwrap());
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

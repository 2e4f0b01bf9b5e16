//! One endpoint's delivery outcomes on their way to the store. The worker hands each
//! finished attempt's outcome to the writer's group commit as soon as it learns of it (the
//! writer batches whatever is waiting into one commit; holding outcomes back here would
//! make a crash repeat more than the attempts in flight, `tests/deliver_crash.rs`), and
//! awaits the commits in order in its own loop: no task per delivery.

use std::collections::VecDeque;

use crate::store::deliveries::Update;
use crate::store::{Committed, Store, StoreError};

/// The outcomes handed to the store and not yet known committed, oldest first.
#[derive(Default)]
pub struct Outbox {
    flights: VecDeque<(i64, Committed)>,
}

impl Outbox {
    /// Nothing in flight.
    pub fn is_empty(&self) -> bool {
        self.flights.is_empty()
    }

    /// Hand one outcome to the store. When it cannot take it, the row is still pending.
    pub async fn send(&mut self, store: &Store, update: Update) -> Result<(), StoreError> {
        let seq = update.seq;
        let committed = store.complete(vec![update]).await?;
        self.flights.push_back((seq, committed));
        Ok(())
    }

    /// Wait for the oldest outcome in flight (the writer commits in order): its seq, and
    /// whether it was committed. `None` at once when none is in flight. Cancel-safe:
    /// dropped before the commit is known, the outcome stays in flight.
    pub async fn committed(&mut self) -> Option<(i64, bool)> {
        let (_, commit) = self.flights.front_mut()?;
        let ok = commit.await.is_ok();
        let (seq, _) = self.flights.pop_front()?;
        Some((seq, ok))
    }

    /// At shutdown: wait for every commit in flight.
    pub async fn drain(&mut self) {
        while self.committed().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::deliveries::Outcome;

    fn store(dir: &tempfile::TempDir) -> Store {
        let config = crate::config::parse("", &dir.path().join("edgehook.toml")).unwrap();
        Store::open(&dir.path().join("queue.db"), &config.queue).unwrap()
    }

    fn update(seq: i64) -> Update {
        Update {
            seq,
            outcome: Outcome::Delivered,
        }
    }

    /// Commits are learned in the order the outcomes were sent.
    #[tokio::test]
    async fn commits_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let mut outbox = Outbox::default();
        assert!(outbox.committed().await.is_none(), "nothing in flight");
        for seq in [1, 2, 3] {
            outbox.send(&store, update(seq)).await.unwrap();
        }
        for seq in [1, 2, 3] {
            assert_eq!(outbox.committed().await, Some((seq, true)));
        }
        assert!(outbox.is_empty());
    }

    /// A closed store refuses the outcome: nothing is left in flight for it.
    #[tokio::test]
    async fn a_closed_store_refuses_the_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        store.clone().close();
        let mut outbox = Outbox::default();
        assert!(outbox.send(&store, update(7)).await.is_err());
        assert!(outbox.is_empty());
    }
}

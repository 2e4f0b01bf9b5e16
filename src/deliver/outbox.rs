//! One endpoint's delivery outcomes on their way to the store. The worker hands each
//! finished attempt's outcome to the writer's group commit as soon as it learns of it (the
//! writer batches whatever is waiting into one commit), and awaits the commits in order
//! in its own loop: no task per delivery. Outcomes are not held back to be sent together:
//! one that waited here would be sent again after a crash (`tests/deliver_crash.rs`
//! allows only the attempts in flight to repeat).

use std::collections::VecDeque;

use crate::store::deliveries::Update;
use crate::store::{Committed, Store, StoreError};

/// The outcomes not handed to the store yet, and those handed but not known committed.
#[derive(Default)]
pub struct Outbox {
    waiting: Vec<Update>,
    flights: VecDeque<(Vec<i64>, Committed)>,
}

impl Outbox {
    /// Queue an outcome for the next [`Outbox::send`].
    pub fn push(&mut self, update: Update) {
        self.waiting.push(update);
    }

    /// Nothing waiting and nothing in flight.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.flights.is_empty()
    }

    /// Hand the waiting outcomes to the store. When the store cannot take them, their
    /// seqs come back with the error: those rows are still pending.
    pub async fn send(&mut self, store: &Store) -> Result<(), (Vec<i64>, StoreError)> {
        if self.waiting.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.waiting);
        let seqs = batch.iter().map(|u| u.seq).collect();
        match store.complete(batch).await {
            Ok(committed) => {
                self.flights.push_back((seqs, committed));
                Ok(())
            }
            Err(err) => Err((seqs, err)),
        }
    }

    /// Wait for the oldest batch in flight (the writer commits in order): its seqs, and
    /// whether their outcomes were committed. `None` at once when none is in flight.
    /// Cancel-safe: dropped before the commit is known, the batch stays in flight.
    pub async fn committed(&mut self) -> Option<(Vec<i64>, bool)> {
        let (_, commit) = self.flights.front_mut()?;
        let ok = commit.await.is_ok();
        let (seqs, _) = self.flights.pop_front()?;
        Some((seqs, ok))
    }

    /// At shutdown: send everything left and wait for its commits.
    pub async fn drain(&mut self, store: &Store) {
        if self.send(store).await.is_err() {
            return; // The store is closed: the rows stay pending.
        }
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

    /// Outcomes go at once, and their commits are learned in the order they were sent.
    #[tokio::test]
    async fn outcomes_go_at_once_and_commits_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let mut outbox = Outbox::default();
        assert!(outbox.committed().await.is_none(), "nothing in flight");
        outbox.push(update(1));
        outbox.send(&store).await.unwrap();
        outbox.push(update(2));
        outbox.push(update(3));
        outbox.send(&store).await.unwrap();
        assert!(outbox.waiting.is_empty(), "nothing held back");
        assert_eq!(outbox.committed().await, Some((vec![1], true)));
        assert_eq!(outbox.committed().await, Some((vec![2, 3], true)));
        assert!(outbox.is_empty());
    }

    /// A closed store gives the seqs back: the rows stay pending.
    #[tokio::test]
    async fn a_closed_store_gives_the_seqs_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        store.clone().close();
        let mut outbox = Outbox::default();
        outbox.push(update(7));
        let (seqs, _) = outbox.send(&store).await.unwrap_err();
        assert_eq!(seqs, vec![7]);
        assert!(outbox.is_empty());
    }
}

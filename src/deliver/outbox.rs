//! One endpoint's delivery outcomes on their way to the store: handed to the writer's
//! group commit a batch at a time. While one batch is being committed, the outcomes of
//! attempts that finish meanwhile wait here and go together as the next batch, so a
//! busy endpoint costs the writer one command (and the worker one wake-up) per commit
//! instead of one per delivery, and an idle one sends each outcome at once.

use crate::store::deliveries::Update;
use crate::store::{Committed, Store, StoreError};

/// The outcomes waiting, and the batch in flight.
#[derive(Default)]
pub struct Outbox {
    waiting: Vec<Update>,
    flight: Option<(Vec<i64>, Committed)>,
}

impl Outbox {
    /// Queue an outcome for the next batch.
    pub fn push(&mut self, update: Update) {
        self.waiting.push(update);
    }

    /// Nothing waiting and nothing in flight.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.flight.is_none()
    }

    /// Hand the waiting outcomes to the store, unless a batch is still in flight. When the
    /// store cannot take them, their seqs come back with the error: those rows are still
    /// pending.
    pub async fn send(&mut self, store: &Store) -> Result<(), (Vec<i64>, StoreError)> {
        if self.flight.is_some() || self.waiting.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.waiting);
        let seqs = batch.iter().map(|u| u.seq).collect();
        match store.complete(batch).await {
            Ok(committed) => {
                self.flight = Some((seqs, committed));
                Ok(())
            }
            Err(err) => Err((seqs, err)),
        }
    }

    /// Wait for the batch in flight: its seqs, and whether their outcomes were committed.
    /// `None` at once when no batch is in flight. Cancel-safe: dropped before the commit
    /// is known, the batch stays in flight.
    pub async fn committed(&mut self) -> Option<(Vec<i64>, bool)> {
        let (_, commit) = self.flight.as_mut()?;
        let ok = commit.await.is_ok();
        let (seqs, _) = self.flight.take()?;
        Some((seqs, ok))
    }

    /// At shutdown: send and commit everything left, in as many batches as it takes.
    pub async fn drain(&mut self, store: &Store) {
        loop {
            if self.send(store).await.is_err() {
                return; // The store is closed: the rows stay pending.
            }
            if self.committed().await.is_none() {
                return;
            }
        }
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

    /// One batch at a time: what finishes while a batch commits waits for it, then goes
    /// as one command.
    #[tokio::test]
    async fn outcomes_wait_for_the_batch_in_flight_then_go_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let mut outbox = Outbox::default();
        assert!(outbox.committed().await.is_none(), "nothing in flight");
        outbox.push(update(1));
        outbox.send(&store).await.unwrap();
        outbox.push(update(2));
        outbox.push(update(3));
        outbox.send(&store).await.unwrap();
        assert_eq!(
            outbox.waiting.len(),
            2,
            "held while the first batch commits"
        );
        assert_eq!(outbox.committed().await, Some((vec![1], true)));
        outbox.send(&store).await.unwrap();
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

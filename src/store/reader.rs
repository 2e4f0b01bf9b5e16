//! A reader thread: one read connection and the queue of queries waiting for it.
//!
//! Every delivery worker reads the queue through [`Store::read`](super::Store::read). A
//! `spawn_blocking` call per read that then waited on the connection's mutex made the
//! blocking pool grow with the number of endpoints (129 threads for 100 offline
//! endpoints, each an 8 MiB stack reservation). Here the queries queue up in a channel and
//! one thread runs them in turn: the same one-at-a-time order the mutex gave, with a
//! fixed thread count whatever the number of workers.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::StoreError;

/// A query waiting for the connection.
type Job = Box<dyn FnOnce(&Connection) + Send>;

/// The handle: queries sent here run on the reader thread, in order.
pub(super) struct Reader {
    jobs: mpsc::Sender<Job>,
}

impl Reader {
    /// Start the thread `name` owning `conn`. It ends once every [`Reader`] handle is gone.
    pub(super) fn spawn(name: &str, conn: Connection) -> std::io::Result<(Reader, JoinHandle<()>)> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for job in queue {
                    // A query that panics loses only its own answer (its caller sees
                    // `Closed`); the thread goes on serving the others.
                    let _ = catch_unwind(AssertUnwindSafe(|| job(&conn)));
                }
            })?;
        Ok((Reader { jobs }, thread))
    }

    /// Run `f` on the reader connection and wait for its answer without blocking the
    /// async threads.
    pub(super) async fn query<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = reply.send(f(conn).map_err(|e| StoreError::Unavailable(e.to_string())));
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_queries_in_order_and_survives_a_panicking_one() {
        let (reader, thread) =
            Reader::spawn("test-reader", Connection::open_in_memory().unwrap()).unwrap();
        let one: i64 = reader
            .query(|c| c.query_row("SELECT 1", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(one, 1);
        let panicked = reader
            .query(|_| -> rusqlite::Result<()> { panic!("boom") })
            .await;
        assert_eq!(panicked, Err(StoreError::Closed));
        let err = reader
            .query(|c| c.query_row("SELECT nope", [], |r| r.get::<_, i64>(0)))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(m) if m.contains("nope")));
        let two: i64 = reader
            .query(|c| c.query_row("SELECT 2", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(two, 2, "the thread still serves after a panic");
        drop(reader);
        thread.join().unwrap();
    }
}

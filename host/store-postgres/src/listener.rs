//! The listener: one connection of its own that `LISTEN`s for `tally_events` and, on
//! each notification (and every `poll_interval` without one), reads where the log ends
//! and advances the committed end. A notification carries nothing but the wake-up:
//! what was committed is always read from the tables. Lost notifications (a dropped
//! connection) cost at most a poll interval; the listener reconnects by itself.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use crate::committed::CommittedEnd;
use crate::convert::position_from_db;
use crate::error::{PgStoreError, Result};

/// The channel `tally_append` notifies.
pub(crate) const CHANNEL: &str = "tally_events";

/// Where the log ends, read from the database.
pub(crate) const END_SQL: &str = "SELECT next_position FROM tally_log_head";

/// How long the listener waits before connecting again after a failure (and a
/// subscription before reading its page again).
pub(crate) const RECONNECT_DELAY: Duration = Duration::from_millis(250);

/// The listener's settings.
#[derive(Debug, Clone)]
pub(crate) struct Listener {
    pub connection: tokio_postgres::Config,
    pub committed: Arc<CommittedEnd>,
    pub poll_interval: Duration,
}

impl Listener {
    /// Listens until the store is closed, connecting again after every failure.
    pub async fn run(self) {
        while !self.committed.get().closed {
            match self.listen().await {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "the event listener lost its connection; reconnecting");
                    tokio::time::sleep(RECONNECT_DELAY).await;
                }
            }
        }
    }

    /// One connection's life: `LISTEN`, then read the end on every wake-up. Returns
    /// `Ok` once the store is closed.
    async fn listen(&self) -> Result<()> {
        let (client, mut wakeups, _driver) = self.connect().await?;
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        let mut closed = self.committed.subscribe();
        loop {
            // Read after LISTEN: a commit before it is seen here, one after it notifies.
            self.refresh(&client).await?;
            tokio::select! {
                woken = wakeups.recv() => {
                    if woken.is_none() {
                        return Err(PgStoreError::Unavailable("the listening connection ended".into()));
                    }
                }
                () = tokio::time::sleep(self.poll_interval) => {}
                _ = closed.wait_for(|committed| committed.closed) => return Ok(()),
            }
        }
    }

    /// A connection, the notifications it receives, and the task that drives it
    /// (aborted when dropped).
    async fn connect(&self) -> Result<(Client, mpsc::Receiver<()>, AbortOnDrop)> {
        let (client, mut connection) = self.connection.connect(NoTls).await?;
        let (wake, wakeups) = mpsc::channel(1);
        let driver = tokio::spawn(async move {
            while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        // One wake-up pending is enough: the next read sees every commit.
                        if let Err(mpsc::error::TrySendError::Closed(())) = wake.try_send(()) {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::debug!(error = %err, "the listening connection failed");
                        return;
                    }
                }
            }
        });
        Ok((client, wakeups, AbortOnDrop(driver)))
    }

    async fn refresh(&self, client: &Client) -> Result<()> {
        let row = client.query_one(END_SQL, &[]).await?;
        self.committed.advance(position_from_db(row.try_get(0)?)?);
        Ok(())
    }
}

/// A task aborted when this is dropped.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

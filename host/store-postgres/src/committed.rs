//! The committed end as this process knows it: a `watch` that only moves forward,
//! advanced by this process's own batches and by the listener (another host's
//! commits), and closed with the store.

use tally_store::GlobalPosition;
use tokio::sync::watch;

/// What the watch holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Committed {
    /// Every event before this position is committed.
    pub end: GlobalPosition,
    /// The store is closed: waiters give up.
    pub closed: bool,
}

/// The committed end, shared by the store, its batcher, its listener and subscriptions.
#[derive(Debug)]
pub(crate) struct CommittedEnd(watch::Sender<Committed>);

impl CommittedEnd {
    /// Starts at `end`, read from the database.
    pub fn new(end: GlobalPosition) -> CommittedEnd {
        CommittedEnd(watch::Sender::new(Committed { end, closed: false }))
    }

    /// Moves the end to `end` if that is further; wakes the waiters if it moved.
    pub fn advance(&self, end: GlobalPosition) {
        self.0.send_if_modified(|committed| {
            let moved = end > committed.end;
            if moved {
                committed.end = end;
            }
            moved
        });
    }

    /// Marks the store closed and wakes every waiter.
    pub fn close(&self) {
        self.0.send_modify(|committed| committed.closed = true);
    }

    /// The end and whether the store is closed, now.
    pub fn get(&self) -> Committed {
        *self.0.borrow()
    }

    /// A receiver to wait for the next move.
    pub fn subscribe(&self) -> watch::Receiver<Committed> {
        self.0.subscribe()
    }
}

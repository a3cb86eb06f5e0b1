//! Catch-up subscriptions that turn live, on the database: a [`Subscription`] reads
//! pages of committed events from its position up to the committed end, then waits for
//! the end to move (this process's batches, or a notification of another's) and reads
//! again. Every event comes from the table, never from a notification. Positions become
//! visible only in commit order, so a page below the committed end is final: the
//! subscription never passes a position that is filled in later.
//!
//! A page that cannot be read because the database is out of reach (a failover, a
//! restart) is read again after a pause, as the listener connects again: a subscription
//! outlives a failover. It ends on any other failure, and once the store is closed.

use std::collections::VecDeque;

use tally_store::{GlobalPosition, RecordedEvent, SubscriptionFilter};
use tokio::sync::watch;

use crate::committed::Committed;
use crate::error::{PgStoreError, Result};
use crate::listener::RECONNECT_DELAY;
use crate::store::PostgresEventStore;

/// A subscription: see the module documentation.
#[derive(Debug)]
pub struct Subscription {
    store: PostgresEventStore,
    filter: SubscriptionFilter,
    /// The next position to examine.
    next: GlobalPosition,
    /// Events read and not yet handed out.
    buffer: VecDeque<RecordedEvent>,
    committed: watch::Receiver<Committed>,
}

impl Subscription {
    pub(crate) fn new(
        store: PostgresEventStore,
        from_position: GlobalPosition,
        filter: SubscriptionFilter,
    ) -> Subscription {
        let committed = store.committed().subscribe();
        Subscription {
            store,
            filter,
            next: from_position,
            buffer: VecDeque::new(),
            committed,
        }
    }

    /// The position after the last event examined: resuming from here misses nothing.
    pub fn position(&self) -> GlobalPosition {
        self.buffer
            .front()
            .map_or(self.next, |event| event.position)
    }

    /// The next matching committed event, waiting for one if the subscription has
    /// caught up. Fails with [`PgStoreError::Closed`] once the store is closed.
    pub async fn next(&mut self) -> Result<RecordedEvent> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Ok(event);
            }
            let committed = *self.committed.borrow_and_update();
            if committed.closed {
                return Err(PgStoreError::Closed);
            }
            if self.next < committed.end {
                self.read_page(committed.end).await?;
            } else {
                self.committed
                    .changed()
                    .await
                    .map_err(|_| PgStoreError::Closed)?;
            }
        }
    }

    /// Reads the next page below `end` into the buffer and moves past what it examined;
    /// while the database is out of reach, again after a pause.
    async fn read_page(&mut self, end: GlobalPosition) -> Result<()> {
        let page = self.store.config().subscription_page;
        let events = loop {
            match self
                .store
                .read_page(self.next, end, &self.filter, page)
                .await
            {
                Ok(events) => break events,
                Err(PgStoreError::Unavailable(reason)) => {
                    tracing::debug!(%reason, "a subscription cannot read its page; trying again");
                    tokio::time::sleep(RECONNECT_DELAY).await;
                }
                Err(err) => return Err(err),
            }
        };
        self.next = match events.last() {
            // A full page may stop short of the end; a short one examined all of it.
            Some(last) if events.len() == page => last.position.next(),
            _ => end,
        };
        self.buffer.extend(events);
        Ok(())
    }
}

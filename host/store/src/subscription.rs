//! Catch-up subscriptions that turn live: [`Subscription`].
//!
//! A subscription is a cursor over global positions. It reads pages of durable events
//! from the log until it reaches the committed end, then waits for the end to move. Catch-up
//! and live delivery are the same loop, so there is no gap or duplicate between them, and
//! a slow subscriber never holds up appends: it simply reads the log later.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use tokio::sync::watch;

use crate::error::{Result, StoreError};
use crate::event::{RecordedEvent, StreamId};
use crate::store::EventStore;

/// Events read from the log per page.
const PAGE: usize = 512;

/// Which events a subscription delivers; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionFilter {
    /// Only events of this aggregate type.
    pub aggregate_type: Option<String>,
    /// Only events of this stream.
    pub stream: Option<StreamId>,
    /// Only events with this name.
    pub event_name: Option<String>,
}

impl SubscriptionFilter {
    /// Whether `event` passes the filter.
    pub fn matches(&self, event: &RecordedEvent) -> bool {
        self.aggregate_type
            .as_ref()
            .is_none_or(|t| **t == *event.stream.aggregate_type)
            && self.stream.as_ref().is_none_or(|s| *s == event.stream)
            && self.event_name.as_ref().is_none_or(|n| *n == event.name)
    }
}

/// A subscription: see the module documentation.
#[derive(Debug)]
pub struct Subscription {
    store: EventStore,
    filter: SubscriptionFilter,
    /// The next position to examine.
    next: u64,
    buffer: VecDeque<RecordedEvent>,
    committed: watch::Receiver<u64>,
}

impl Subscription {
    pub(crate) fn new(
        store: EventStore,
        from_position: u64,
        filter: SubscriptionFilter,
    ) -> Subscription {
        let committed = store.core().committed.subscribe();
        Subscription {
            store,
            filter,
            next: from_position,
            buffer: VecDeque::new(),
            committed,
        }
    }

    /// The position after the last event examined: resuming from here misses nothing.
    pub fn position(&self) -> u64 {
        self.buffer
            .front()
            .map_or(self.next, |event| event.position)
    }

    /// The next matching durable event, waiting for one if the subscription has caught up.
    /// Fails with [`StoreError::Closed`] once the store is closed.
    pub async fn next(&mut self) -> Result<RecordedEvent> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Ok(event);
            }
            if self.store.core().closed.load(Ordering::Acquire) {
                return Err(StoreError::Closed);
            }
            let end = *self.committed.borrow_and_update();
            if self.next < end {
                self.fill(end).await?;
                continue;
            }
            self.committed
                .changed()
                .await
                .map_err(|_| StoreError::Closed)?;
        }
    }

    /// Reads the next page of events before `end` into the buffer.
    async fn fill(&mut self, end: u64) -> Result<()> {
        let events = match &self.filter.stream {
            // One stream: read only its events, through the stream index.
            Some(stream) => {
                let page = PAGE.min(self.store.config().max_read_count);
                let from = self.store.first_version_at_or_after(stream, self.next);
                let read = crate::store::StreamRead::forward(from, page).up_to(end - 1);
                let events = self.store.read_stream(stream, read).await?;
                if events.len() < page {
                    self.next = end;
                } else if let Some(last) = events.last() {
                    self.next = last.position + 1;
                }
                events
            }
            None => {
                let page = PAGE.min(self.store.config().max_read_count);
                let count = ((end - self.next) as usize).min(page);
                let events = self.store.read_all(self.next, count).await?;
                self.next += events.len() as u64;
                events
            }
        };
        self.buffer.extend(
            events
                .into_iter()
                .filter(|event| self.filter.matches(event)),
        );
        Ok(())
    }
}

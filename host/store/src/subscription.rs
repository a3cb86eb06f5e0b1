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
use crate::version::GlobalPosition;

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
    next: GlobalPosition,
    buffer: VecDeque<RecordedEvent>,
    committed: watch::Receiver<GlobalPosition>,
}

impl Subscription {
    pub(crate) fn new(
        store: EventStore,
        from_position: GlobalPosition,
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
    pub fn position(&self) -> GlobalPosition {
        self.buffer
            .front()
            .map_or(self.next, |event| event.position)
    }

    /// The next matching durable event, waiting for one if the subscription has caught up.
    /// Fails with [`StoreError::Closed`] once the store is closed.
    pub async fn next(&mut self) -> Result<RecordedEvent> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                debug_assert!(
                    event.position < self.next,
                    "a subscription delivers only positions it has examined"
                );
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
    async fn fill(&mut self, end: GlobalPosition) -> Result<()> {
        let page = PAGE.min(self.store.config().max_read_count);
        let events = match &self.filter.stream {
            Some(stream) => self.read_stream_page(&stream.clone(), end, page).await?,
            None => {
                let count = (end.events_since(self.next) as usize).min(page);
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

    /// One stream: the next page of its events before `end`, read through the stream
    /// index rather than the whole log.
    async fn read_stream_page(
        &mut self,
        stream: &StreamId,
        end: GlobalPosition,
        page: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let from = self.store.version_before(stream, self.next).next();
        let last = GlobalPosition::new(end.get() - 1);
        let read = crate::store::StreamRead::forward(from, page).up_to(last);
        let events = self.store.read_stream(stream, read).await?;
        if events.len() < page {
            self.next = end;
        } else if let Some(last) = events.last() {
            self.next = last.position.next();
        }
        Ok(events)
    }
}

//! Catch-up subscriptions that turn live: [`Subscription`].
//!
//! A subscription is a cursor over global positions with two ways to move it on:
//!
//! - **Catch-up**: it reads the log from its position, one page at a time
//!   ([`StoreConfig::subscription_page`](crate::StoreConfig::subscription_page) events),
//!   until it reaches the committed end. A page is all it holds, however far behind it
//!   starts.
//! - **Live**: it receives the pages of the store's one shared live reader, which reads
//!   every newly committed stretch of the log once and broadcasts it to all live
//!   subscriptions (`live.rs`). However many subscribe, each new event is read once.
//!
//! The switch has no gap and no duplicate. A subscription joins the broadcast *before* it
//! looks at the committed end for the last time, so every event committed after that
//! comes through the broadcast, and everything before it is read from the log. Pages (or
//! their first events) before its position are skipped; a page that starts after its
//! position (it joined while the reader was skipping, or a read of the reader failed) sends
//! it back to the log for the missing stretch. A live subscription that falls more than
//! the broadcast's capacity behind (`Lagged`) leaves the broadcast and catches up from its
//! own position: a slow subscriber holds up neither appends nor other subscribers, and
//! nothing is lost.

use std::any::TypeId;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};
use tokio::time::Instant;

use crate::error::{Result, StoreError};
use crate::event::{RecordedEvent, StreamId};
use crate::live::Jitter;
use crate::store::{EventStore, StreamRead};
use crate::version::GlobalPosition;

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

    /// Whether every event passes.
    fn matches_all(&self) -> bool {
        self.aggregate_type.is_none() && self.stream.is_none() && self.event_name.is_none()
    }
}

/// Turns an event into bytes, for [`EventPage::encoded`]: a service that sends every
/// subscriber the same bytes for an event (say, a Server-Sent Events message) encodes
/// each live event once, not once per subscriber.
pub trait EventEncoder: 'static {
    /// Appends the encoding of `event` to `out`.
    fn encode(event: &RecordedEvent, out: &mut Vec<u8>);
}

/// The events of a page encoded back to back by an [`EventEncoder`].
#[derive(Debug, Clone)]
pub struct EncodedEvents {
    bytes: Bytes,
    /// `ends[i]`: where the encoding of the page's event `i` ends in `bytes`.
    ends: Box<[usize]>,
}

impl EncodedEvents {
    fn of<E: EventEncoder>(events: &[RecordedEvent]) -> EncodedEvents {
        let mut bytes = Vec::new();
        let ends = events
            .iter()
            .map(|event| {
                E::encode(event, &mut bytes);
                bytes.len()
            })
            .collect();
        EncodedEvents {
            bytes: bytes.into(),
            ends,
        }
    }

    /// The encodings of the page's events `range` (indices into
    /// [`EventPage::events`]), back to back, sharing the page's buffer.
    pub fn range(&self, range: Range<usize>) -> Bytes {
        let start = range.start.checked_sub(1).map_or(0, |i| self.ends[i]);
        let end = range.end.checked_sub(1).map_or(0, |i| self.ends[i]);
        self.bytes.slice(start..end.max(start))
    }
}

/// Events read from the log together, in position order: a page of one subscription's
/// catch-up, or a page of the shared live reader, which every live subscription shares.
#[derive(Debug)]
pub struct EventPage {
    events: Box<[RecordedEvent]>,
    /// The first [`EventEncoder`]'s encoding, made by whoever asks first.
    encoded: OnceLock<(TypeId, EncodedEvents)>,
}

impl EventPage {
    pub(crate) fn new(events: Vec<RecordedEvent>) -> EventPage {
        debug_assert!(!events.is_empty(), "a page has events");
        EventPage {
            events: events.into_boxed_slice(),
            encoded: OnceLock::new(),
        }
    }

    /// The events.
    pub fn events(&self) -> &[RecordedEvent] {
        &self.events
    }

    /// The position after the page's last event.
    pub(crate) fn end(&self) -> GlobalPosition {
        self.events
            .last()
            .expect("a page has events")
            .position
            .next()
    }

    /// The events encoded by `E`. The first encoder asked for is encoded once and kept
    /// for everyone who shares the page; another one is encoded at each call.
    pub fn encoded<E: EventEncoder>(&self) -> Cow<'_, EncodedEvents> {
        let (encoder, encoded) = self
            .encoded
            .get_or_init(|| (TypeId::of::<E>(), EncodedEvents::of::<E>(&self.events)));
        if *encoder == TypeId::of::<E>() {
            Cow::Borrowed(encoded)
        } else {
            Cow::Owned(EncodedEvents::of::<E>(&self.events))
        }
    }
}

/// What [`Subscription::next_delivery`] hands over: the events of one page that the
/// subscription delivers, as runs of consecutive events of the page.
#[derive(Debug, Clone)]
pub struct Delivery {
    page: Arc<EventPage>,
    /// Never empty, and no run is empty.
    runs: Vec<Range<usize>>,
}

impl Delivery {
    /// A delivery of every event of `page`.
    fn whole(page: EventPage) -> Delivery {
        let every_event = 0..page.events.len();
        let runs = vec![every_event];
        Delivery {
            page: Arc::new(page),
            runs,
        }
    }

    /// The page the events are in.
    pub fn page(&self) -> &EventPage {
        &self.page
    }

    /// The delivered events, as ranges of indices into the page's events, in order.
    pub fn runs(&self) -> &[Range<usize>] {
        &self.runs
    }

    /// The delivered events, in position order.
    pub fn events(&self) -> impl Iterator<Item = &RecordedEvent> {
        self.runs
            .iter()
            .flat_map(|run| self.page.events[run.clone()].iter())
    }

    /// The last delivered event.
    pub fn last(&self) -> &RecordedEvent {
        let run = self.runs.last().expect("a delivery has events");
        &self.page.events[run.end - 1]
    }
}

/// How a subscription moves on.
#[derive(Debug)]
enum Mode {
    /// Reading the log. `live` is the broadcast, once joined for the last stretch.
    CatchUp {
        live: Option<broadcast::Receiver<Arc<EventPage>>>,
    },
    /// Receiving the shared live reader's pages.
    Live(broadcast::Receiver<Arc<EventPage>>),
}

/// A subscription: see the module documentation.
#[derive(Debug)]
pub struct Subscription {
    store: EventStore,
    filter: SubscriptionFilter,
    /// The next position to examine.
    next: GlobalPosition,
    mode: Mode,
    /// Events of a delivery not yet handed out by [`next`](Self::next).
    buffer: VecDeque<RecordedEvent>,
    /// Whether pages came since the subscription last waited for the broadcast: then
    /// its next wait is a paced one ([`StoreConfig::live_pacing_per_subscriber`]).
    ///
    /// [`StoreConfig::live_pacing_per_subscriber`]: crate::StoreConfig::live_pacing_per_subscriber
    received_since_wait: bool,
    /// The end of the current paced wait, kept here so that a wait cut short (the call
    /// dropped) resumes rather than starts over or is skipped.
    paced_until: Option<Instant>,
    jitter: Jitter,
}

impl Subscription {
    pub(crate) fn new(
        store: EventStore,
        from_position: GlobalPosition,
        filter: SubscriptionFilter,
    ) -> Subscription {
        let jitter = store.fanout().jitter();
        Subscription {
            store,
            filter,
            next: from_position,
            mode: Mode::CatchUp { live: None },
            buffer: VecDeque::new(),
            received_since_wait: false,
            paced_until: None,
            jitter,
        }
    }

    /// The position after the last event examined: resuming from here misses nothing.
    pub fn position(&self) -> GlobalPosition {
        self.buffer
            .front()
            .map_or(self.next, |event| event.position)
    }

    /// Whether the subscription receives the shared live pages now (rather than reading
    /// the log to catch up).
    pub fn is_live(&self) -> bool {
        matches!(self.mode, Mode::Live(_))
    }

    /// The next matching durable event, waiting for one if the subscription has caught up.
    /// Fails with [`StoreError::Closed`] once the store is closed.
    pub async fn next(&mut self) -> Result<RecordedEvent> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Ok(event);
            }
            let delivery = self.next_delivery().await?;
            self.buffer.extend(delivery.events().cloned());
        }
    }

    /// The next matching durable events, at least one, as many as one page holds: for
    /// consumers that handle events in batches, and that can share the work of a live
    /// page with the other subscriptions ([`EventPage::encoded`]). After it returns,
    /// [`position`](Self::position) is past every event delivered. Fails with
    /// [`StoreError::Closed`] once the store is closed.
    ///
    /// Cancel-safe: a call dropped while it waits loses nothing.
    pub async fn next_delivery(&mut self) -> Result<Delivery> {
        if !self.buffer.is_empty() {
            let events = self.buffer.drain(..).collect();
            return Ok(Delivery::whole(EventPage::new(events)));
        }
        loop {
            if self.store.is_closed() {
                return Err(StoreError::Closed);
            }
            let delivery = match self.mode {
                Mode::CatchUp { .. } => self.catch_up().await?,
                Mode::Live(_) => self.receive().await?,
            };
            if let Some(delivery) = delivery {
                return Ok(delivery);
            }
        }
    }

    /// One step of the catch-up: a page of the log, or, at the committed end, joining
    /// the broadcast and then going live.
    async fn catch_up(&mut self) -> Result<Option<Delivery>> {
        let end = self.store.committed_end();
        if self.next < end {
            return self.read_page(end).await;
        }
        let Mode::CatchUp { live } = &mut self.mode else {
            unreachable!("catching up")
        };
        match live.take() {
            // Joined before this look at the end: everything later comes through it.
            Some(receiver) => self.mode = Mode::Live(receiver),
            // Join first, then look at the end again: whatever was committed before
            // joining is read from the log.
            None => *live = Some(self.store.fanout().join()?),
        }
        Ok(None)
    }

    /// Reads the next page of the log before `end`; its matching events, if any.
    async fn read_page(&mut self, end: GlobalPosition) -> Result<Option<Delivery>> {
        let config = self.store.config();
        let page = config.subscription_page.min(config.max_read_count);
        let events = {
            // A handle of its own, so that the turn does not borrow the subscription.
            let store = self.store.clone();
            let _turn = store.fanout().catch_up_turn().await?;
            match self.filter.stream.clone() {
                Some(stream) => self.read_stream_page(&stream, end, page).await?,
                None => self.read_log_page(end, page).await?,
            }
        };
        let matching: Vec<RecordedEvent> = events
            .into_iter()
            .filter(|event| self.filter.matches(event))
            .collect();
        Ok((!matching.is_empty()).then(|| Delivery::whole(EventPage::new(matching))))
    }

    /// The next page of the whole log before `end`.
    async fn read_log_page(
        &mut self,
        end: GlobalPosition,
        page: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let count = (end.events_since(self.next) as usize).min(page);
        let events = self.store.read_all(self.next, count).await?;
        self.next += events.len() as u64;
        Ok(events)
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
        let read = StreamRead::forward(from, page).up_to(last);
        let events = self.store.read_stream(stream, read).await?;
        if events.len() < page {
            self.next = end;
        } else if let Some(last) = events.last() {
            self.next = last.position.next();
        }
        Ok(events)
    }

    /// Receives the next live page; its events past the subscription's position that
    /// match, if any. Falls back to catching up after a gap or a lag.
    ///
    /// Pages already broadcast are taken at once. When there are none, the subscription
    /// waits; if the last wait brought pages, it first sleeps through its pacing interval
    /// (`StoreConfig::live_pacing_per_subscriber`), so that it is woken at most once per
    /// interval however often the reader broadcasts, and takes what came meanwhile.
    async fn receive(&mut self) -> Result<Option<Delivery>> {
        let Mode::Live(receiver) = &mut self.mode else {
            unreachable!("live")
        };
        let received = match receiver.try_recv() {
            Ok(page) => Ok(page),
            Err(TryRecvError::Empty) => {
                if std::mem::take(&mut self.received_since_wait)
                    && let Some(interval) = self.store.fanout().wake_interval()
                {
                    self.paced_until = Some(Instant::now() + self.jitter.spread(interval));
                }
                if let Some(until) = self.paced_until {
                    tokio::time::sleep_until(until).await;
                    self.paced_until = None;
                    return Ok(None);
                }
                receiver.recv().await
            }
            Err(TryRecvError::Lagged(skipped)) => Err(RecvError::Lagged(skipped)),
            Err(TryRecvError::Closed) => Err(RecvError::Closed),
        };
        match received {
            Ok(page) => {
                self.received_since_wait = true;
                Ok(self.take_live(page))
            }
            Err(RecvError::Lagged(_)) => {
                // Pages were dropped for it: read them from the log, and release the
                // broadcast's pages it still held meanwhile.
                self.store.fanout().count_lagged();
                self.mode = Mode::CatchUp { live: None };
                Ok(None)
            }
            Err(RecvError::Closed) => Err(StoreError::Closed),
        }
    }

    /// The part of a live page the subscription delivers: the matching events at or
    /// after its position.
    fn take_live(&mut self, page: Arc<EventPage>) -> Option<Delivery> {
        let first = page.events[0].position;
        if first > self.next {
            // A gap before the page: read it from the log, staying in the broadcast for
            // what follows (the page itself is read again from the log).
            let mode = std::mem::replace(&mut self.mode, Mode::CatchUp { live: None });
            let Mode::Live(receiver) = mode else {
                unreachable!("live")
            };
            self.mode = Mode::CatchUp {
                live: Some(receiver),
            };
            return None;
        }
        let end = page.end();
        if end <= self.next {
            return None;
        }
        // Live pages are dense: the event at `next` is `next - first` into the page.
        let skip = self.next.events_since(first) as usize;
        self.next = end;
        let runs = matching_runs(&page.events, skip, &self.filter);
        (!runs.is_empty()).then_some(Delivery { page, runs })
    }
}

/// The runs of consecutive events from index `from` on that pass `filter`.
fn matching_runs(
    events: &[RecordedEvent],
    from: usize,
    filter: &SubscriptionFilter,
) -> Vec<Range<usize>> {
    if filter.matches_all() {
        let rest = from..events.len();
        return vec![rest];
    }
    let mut runs: Vec<Range<usize>> = Vec::new();
    for (i, event) in events.iter().enumerate().skip(from) {
        if !filter.matches(event) {
            continue;
        }
        match runs.last_mut() {
            Some(run) if run.end == i => run.end = i + 1,
            _ => runs.push(i..i + 1),
        }
    }
    runs
}

//! A plugin instance's stdout or stderr: a bounded in-memory pipe that the host
//! drains after every call, forwarding complete lines to `tracing`.
//!
//! Draining (rather than reading a copy of everything written so far) keeps the
//! cost of a call independent of how much the instance wrote before it: a call
//! that wrote nothing costs one uncontended lock.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// The shared buffer behind a plugin's output stream: the guest appends, the host
/// drains. A write that would take it past `capacity` bytes fails.
#[derive(Clone)]
pub(crate) struct Pipe {
    buffer: Arc<Mutex<BytesMut>>,
    capacity: usize,
}

impl Pipe {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            buffer: Arc::new(Mutex::new(BytesMut::new())),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BytesMut> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes what was written up to and including the last line break (everything
    /// with `all`), leaving a partial last line in place.
    fn drain(&self, all: bool) -> Bytes {
        let mut buffer = self.lock();
        let end = if all {
            buffer.len()
        } else {
            buffer
                .iter()
                .rposition(|&byte| byte == b'\n')
                .map_or(0, |last| last + 1)
        };
        if end == 0 {
            // The usual case (nothing written): `split_to` would make the buffer a
            // shared one, an allocation per call.
            return Bytes::new();
        }
        buffer.split_to(end).freeze()
    }

    /// Room left; zero when full.
    fn room(&self) -> usize {
        self.capacity.saturating_sub(self.lock().len())
    }
}

impl IsTerminal for Pipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Pipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for Pipe {
    /// Always ready: a write either fits or fails.
    async fn ready(&mut self) {}
}

impl OutputStream for Pipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let mut buffer = self.lock();
        if bytes.len() > self.capacity.saturating_sub(buffer.len()) {
            return Err(StreamError::Trap(wasmtime::format_err!(
                "the plugin wrote more than the {} bytes its output may hold per call",
                self.capacity
            )));
        }
        buffer.extend_from_slice(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        match self.room() {
            0 => Err(StreamError::Closed),
            room => Ok(room),
        }
    }
}

impl tokio::io::AsyncWrite for Pipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut buffer = self.lock();
        let taken = bytes.len().min(self.capacity.saturating_sub(buffer.len()));
        buffer.extend_from_slice(&bytes[..taken]);
        Poll::Ready(Ok(taken))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Which plugin an instance runs, for logs.
#[derive(Clone)]
pub(crate) struct Label {
    pub(crate) aggregate_type: Arc<str>,
    pub(crate) version: Arc<str>,
}

impl Label {
    /// The label of an instance whose plugin has not described itself yet.
    pub(crate) fn undescribed() -> Self {
        Self {
            aggregate_type: Arc::from("(undescribed)"),
            version: Arc::from("(undescribed)"),
        }
    }
}

/// The stdout or stderr of an instance, forwarded to `tracing` by lines.
pub(crate) struct Output {
    pub(crate) pipe: Pipe,
    stderr: bool,
}

impl Output {
    pub(crate) fn new(capacity: usize, stderr: bool) -> Self {
        Self {
            pipe: Pipe::new(capacity),
            stderr,
        }
    }

    /// Forwards the complete lines written since the last time (with `all`, a
    /// trailing partial line too) and returns them.
    pub(crate) fn forward(&self, label: &Label, all: bool) -> Bytes {
        let lines = self.pipe.drain(all);
        for line in lines.split(|&byte| byte == b'\n') {
            if !line.is_empty() {
                self.emit(line, label);
            }
        }
        lines
    }

    fn emit(&self, line: &[u8], label: &Label) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        let (aggregate_type, version) = (&*label.aggregate_type, &*label.version);
        if self.stderr {
            tracing::warn!(target: "tally_runtime::plugin_output", aggregate_type, version, stream = "stderr", "{line}");
        } else {
            tracing::info!(target: "tally_runtime::plugin_output", aggregate_type, version, stream = "stdout", "{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_forwarded_by_complete_lines() {
        let label = Label::undescribed();
        let mut output = Output::new(1024, true);
        let mut pipe = output.pipe.clone();
        pipe.write(Bytes::from_static(b"one\ntw")).unwrap();
        assert_eq!(&output.forward(&label, false)[..], b"one\n");
        pipe.write(Bytes::from_static(b"o\nthree")).unwrap();
        assert_eq!(&output.forward(&label, false)[..], b"two\n");
        assert_eq!(&output.forward(&label, false)[..], b"");
        assert_eq!(&output.forward(&label, true)[..], b"three");
        output.stderr = false;
        assert!(output.forward(&label, true).is_empty());
    }

    #[test]
    fn a_write_past_the_capacity_fails_and_draining_makes_room() {
        let mut pipe = Pipe::new(8);
        pipe.write(Bytes::from_static(b"12345\n")).unwrap();
        assert_eq!(pipe.check_write().unwrap(), 2);
        assert!(matches!(
            pipe.write(Bytes::from_static(b"abc")),
            Err(StreamError::Trap(_))
        ));
        pipe.write(Bytes::from_static(b"ab")).unwrap();
        assert!(matches!(pipe.check_write(), Err(StreamError::Closed)));
        assert_eq!(&pipe.drain(false)[..], b"12345\n");
        assert_eq!(pipe.check_write().unwrap(), 6);
    }
}

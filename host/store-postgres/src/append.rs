//! Appends: the checks of an append's input, and one call of `tally_append` for a batch
//! of appends with the outcome of each.

use bytes::Bytes;
use tally_store::{AppendOptions, AppendResult, ExpectedVersion, NewEvent, StreamId};
use tokio_postgres::{GenericClient, Row, Statement};

use crate::convert::{from_db, position_from_db, version_from_db, version_to_db};
use crate::error::{PgStoreError, Result};

/// One append: events for one stream, with its expected version and options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendRequest {
    /// The stream.
    pub stream: StreamId,
    /// What the stream's version must be.
    pub expected: ExpectedVersion,
    /// The events, at least one.
    pub events: Vec<NewEvent>,
    /// The command id and fingerprint, correlation and causation ids.
    pub options: AppendOptions,
}

impl AppendRequest {
    /// An append of `events` to `stream` if it is at `expected`.
    pub fn new(
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        options: AppendOptions,
    ) -> AppendRequest {
        AppendRequest {
            stream,
            expected,
            events,
            options,
        }
    }
}

/// Limits an append is checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_events: usize,
    pub max_event_size: usize,
    pub max_name_len: usize,
}

/// Checks an append's input as the embedded store does; the error says what is wrong.
pub(crate) fn validate(request: &AppendRequest, limits: Limits) -> Result<()> {
    let events = &request.events;
    if events.is_empty() {
        return invalid("an append needs at least one event".into());
    }
    if events.len() > limits.max_events {
        return invalid(format!(
            "{} events in one append exceed the limit of {}",
            events.len(),
            limits.max_events
        ));
    }
    check_names(request, limits.max_name_len)?;
    events
        .iter()
        .try_for_each(|event| check_event(event, limits))
}

fn invalid<T>(message: String) -> Result<T> {
    Err(PgStoreError::InvalidInput(message))
}

fn check_names(request: &AppendRequest, max: usize) -> Result<()> {
    let options = &request.options;
    let names = [
        ("aggregate type", Some(&*request.stream.aggregate_type)),
        ("aggregate id", Some(&*request.stream.aggregate_id)),
        ("command id", options.command_id.as_deref()),
        ("correlation id", options.correlation_id.as_deref()),
        ("causation id", options.causation_id.as_deref()),
    ];
    names
        .into_iter()
        .filter_map(|(what, value)| value.map(|value| (what, value)))
        .try_for_each(|(what, value)| check_name(what, value, max))
}

fn check_event(event: &NewEvent, limits: Limits) -> Result<()> {
    check_name("event name", &event.name, limits.max_name_len)?;
    let size = event.data.len() + event.metadata.len();
    if size > limits.max_event_size {
        return invalid(format!(
            "event {} of {size} bytes exceeds the limit of {} bytes",
            event.name, limits.max_event_size
        ));
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(&event.data).is_err() {
        return invalid(format!("the data of event {} is not JSON", event.name));
    }
    let object = |bytes: &Bytes| {
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(bytes).is_ok()
    };
    if !event.metadata.is_empty() && !object(&event.metadata) {
        return invalid(format!(
            "the metadata of event {} is not a JSON object",
            event.name
        ));
    }
    Ok(())
}

/// A name or id: not empty, at most `max` bytes, no control characters (PostgreSQL's
/// `text` cannot hold NUL in any case).
pub(crate) fn check_name(what: &str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return invalid(format!("the {what} is empty"));
    }
    if value.len() > max {
        return invalid(format!(
            "the {what} is {} bytes long; the limit is {max}",
            value.len()
        ));
    }
    if value.chars().any(char::is_control) {
        return invalid(format!("the {what} contains control characters"));
    }
    Ok(())
}

/// The call of the append function.
pub(crate) const APPEND_SQL: &str = "SELECT out_command, out_outcome, out_first_position, \
     out_first_version, out_event_count, out_timestamp_ms, out_actual_version, out_other_type, \
     out_other_id FROM tally_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

/// The append function's arguments for a batch: one array element per command, or per
/// event, in order.
struct BatchArguments<'a> {
    types: Vec<&'a str>,
    ids: Vec<&'a str>,
    expected: Vec<Option<i64>>,
    command_ids: Vec<Option<&'a str>>,
    fingerprints: Vec<Option<&'a [u8]>>,
    correlations: Vec<Option<&'a str>>,
    causations: Vec<Option<&'a str>>,
    event_counts: Vec<i32>,
    names: Vec<&'a str>,
    schemas: Vec<i32>,
    data: Vec<&'a [u8]>,
    metadata: Vec<&'a [u8]>,
}

impl<'a> BatchArguments<'a> {
    fn of(requests: &'a [AppendRequest]) -> Result<BatchArguments<'a>> {
        let mut arguments = BatchArguments {
            types: Vec::with_capacity(requests.len()),
            ids: Vec::with_capacity(requests.len()),
            expected: Vec::with_capacity(requests.len()),
            command_ids: Vec::with_capacity(requests.len()),
            fingerprints: Vec::with_capacity(requests.len()),
            correlations: Vec::with_capacity(requests.len()),
            causations: Vec::with_capacity(requests.len()),
            event_counts: Vec::with_capacity(requests.len()),
            names: Vec::new(),
            schemas: Vec::new(),
            data: Vec::new(),
            metadata: Vec::new(),
        };
        for request in requests {
            arguments.push_command(request)?;
            for event in &request.events {
                arguments.push_event(event)?;
            }
        }
        Ok(arguments)
    }

    fn push_command(&mut self, request: &'a AppendRequest) -> Result<()> {
        let options = &request.options;
        self.types.push(&request.stream.aggregate_type);
        self.ids.push(&request.stream.aggregate_id);
        self.expected.push(match request.expected {
            ExpectedVersion::Any => None,
            ExpectedVersion::Exact(version) => Some(version_to_db(version)?),
        });
        self.command_ids.push(options.command_id.as_deref());
        let fingerprint = options.command_fingerprint.as_ref();
        self.fingerprints
            .push(fingerprint.map(|f| f.as_bytes().as_slice()));
        self.correlations.push(options.correlation_id.as_deref());
        self.causations.push(options.causation_id.as_deref());
        let count = i32::try_from(request.events.len())
            .map_err(|_| PgStoreError::InvalidInput("too many events".into()))?;
        self.event_counts.push(count);
        Ok(())
    }

    fn push_event(&mut self, event: &'a NewEvent) -> Result<()> {
        let schema = i32::try_from(event.schema_version.get()).map_err(|_| {
            PgStoreError::InvalidInput(format!("schema version {}", event.schema_version))
        })?;
        self.names.push(&event.name);
        self.schemas.push(schema);
        self.data.push(&event.data);
        self.metadata.push(&event.metadata);
        Ok(())
    }
}

/// Appends `requests` with one call of `tally_append` (`statement`, prepared from
/// [`APPEND_SQL`]): one round trip, one transaction, one commit. The outer error is the batch's (nothing of it was written, or its outcome
/// is unknown); the inner results are each command's, in order.
pub(crate) async fn append_batch<C: GenericClient>(
    client: &C,
    statement: &Statement,
    requests: &[AppendRequest],
) -> Result<Vec<Result<AppendResult>>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let arguments = BatchArguments::of(requests)?;
    let a = &arguments;
    let rows = client
        .query(
            statement,
            &[
                &a.types,
                &a.ids,
                &a.expected,
                &a.command_ids,
                &a.fingerprints,
                &a.correlations,
                &a.causations,
                &a.event_counts,
                &a.names,
                &a.schemas,
                &a.data,
                &a.metadata,
            ],
        )
        .await
        .map_err(|e| PgStoreError::of_batch(&e))?;
    outcomes(requests, &rows)
}

/// Each command's result from the function's rows: exactly one row per command.
fn outcomes(requests: &[AppendRequest], rows: &[Row]) -> Result<Vec<Result<AppendResult>>> {
    let mut results: Vec<Option<Result<AppendResult>>> = requests.iter().map(|_| None).collect();
    for row in rows {
        let command: i32 = row.try_get(0)?;
        let slot = usize::try_from(command)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| results.get_mut(i).map(|slot| (i, slot)));
        let Some((i, slot @ None)) = slot else {
            return Err(PgStoreError::Corrupt(format!(
                "tally_append answered command {command} twice or out of range"
            )));
        };
        *slot = Some(outcome(&requests[i], row)?);
    }
    results
        .into_iter()
        .map(|result| {
            result.ok_or_else(|| {
                PgStoreError::Corrupt("tally_append left a command unanswered".into())
            })
        })
        .collect()
}

/// One command's result from its row.
fn outcome(request: &AppendRequest, row: &Row) -> Result<Result<AppendResult>> {
    let code: i16 = row.try_get(1)?;
    match code {
        0 => Ok(Ok(result(row, false)?)),
        1 => Ok(Ok(result(row, true)?)),
        2 => Ok(Err(PgStoreError::CommandIdReused {
            command_id: request.options.command_id.clone().unwrap_or_default(),
            stream: StreamId::new(row.try_get::<_, &str>(7)?, row.try_get::<_, &str>(8)?),
        })),
        3 => Ok(Err(PgStoreError::WrongExpectedVersion {
            stream: request.stream.clone(),
            expected: request.expected,
            actual: version_from_db(row.try_get(6)?)?,
        })),
        other => Err(PgStoreError::Corrupt(format!(
            "tally_append answered outcome {other}"
        ))),
    }
}

fn result(row: &Row, duplicate: bool) -> Result<AppendResult> {
    Ok(AppendResult {
        first_position: position_from_db(row.try_get(2)?)?,
        first_version: version_from_db(row.try_get(3)?)?,
        count: from_db(row.try_get(4)?, "event count")?,
        timestamp_ms: from_db(row.try_get(5)?, "timestamp")?,
        duplicate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_events: 2,
        max_event_size: 64,
        max_name_len: 8,
    };

    fn request(events: Vec<NewEvent>) -> AppendRequest {
        AppendRequest::new(
            StreamId::new("t", "a"),
            ExpectedVersion::Any,
            events,
            AppendOptions::default(),
        )
    }

    #[test]
    fn the_input_is_checked_as_the_embedded_store_checks_it() {
        let ok = NewEvent::new("E", "{}");
        assert!(validate(&request(vec![ok.clone()]), LIMITS).is_ok());
        let refused = [
            request(vec![]),
            request(vec![ok.clone(), ok.clone(), ok.clone()]),
            request(vec![NewEvent::new("", "{}")]),
            request(vec![NewEvent::new("E\0", "{}")]),
            request(vec![NewEvent::new("a-long-name", "{}")]),
            request(vec![NewEvent::new("E", "not json")]),
            request(vec![NewEvent::new("E", "[1]").with_metadata("[]")]),
            request(vec![NewEvent::new("E", vec![b' '; 65])]),
        ];
        for request in refused {
            assert!(
                matches!(
                    validate(&request, LIMITS),
                    Err(PgStoreError::InvalidInput(_))
                ),
                "{request:?}"
            );
        }
    }

    #[test]
    fn the_arguments_have_one_element_per_command_and_per_event() {
        let requests = [
            request(vec![NewEvent::new("A", "1"), NewEvent::new("B", "2")]),
            request(vec![NewEvent::new("C", "3")]),
        ];
        let arguments = BatchArguments::of(&requests).unwrap();
        assert_eq!(arguments.types.len(), 2);
        assert_eq!(arguments.event_counts, [2, 1]);
        assert_eq!(arguments.names, ["A", "B", "C"]);
    }
}

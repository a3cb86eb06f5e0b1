//! Projections: `describe` and its checks of the constants, the batch semantics of
//! `apply` (event by event, reads see earlier writes, the first error fails the
//! batch with its position and nothing of it is kept), which events reach the
//! projection, and what the `testing::projection` harness checks.

use tally_sdk::__private::projection_wire::{ProjectionInfo, describe};
use tally_sdk::serde_json::{Value, json};
use tally_sdk::testing::projection::{GivenEvent, event, given_events};

use crate::projection_subjects::{
    CamelName, EventLog, Forgetful, LedgerTotals, LooseVersion, MisspeltEvent, NoTables, NoTypes,
    RecordedOnly, UndeclaredTable,
};

/// `Recorded` of ledger `id`, as `Ledger` writes it at schema version 3.
fn recorded(id: &str, amount: i64) -> GivenEvent {
    event(
        "ledger",
        id,
        "Recorded",
        json!({"amount": amount, "at": 7, "entry": 1}),
    )
    .schema_version(3)
}

fn cleared(id: &str) -> GivenEvent {
    event("ledger", id, "Cleared", json!({}))
}

#[test]
fn describe_lists_the_constants() {
    assert_eq!(
        describe::<RecordedOnly>(),
        ProjectionInfo {
            name: "recorded-only".into(),
            version: "1.0.0".into(),
            description: "Sums amounts.".into(),
            aggregate_types: vec!["ledger".into()],
            events: vec!["Recorded".into()],
            tables: vec!["sums".into()],
        }
    );
    assert!(describe::<LedgerTotals>().events.is_empty());
}

#[test]
#[should_panic(
    expected = "projection misspelt-event: EVENTS lists `Clear`, which is not an event variant; the events are: Recorded, Cleared"
)]
fn describe_names_a_misspelt_event() {
    describe::<MisspeltEvent>();
}

#[test]
#[should_panic(expected = "projection misspelt-event: EVENTS lists `Clear`")]
fn every_scenario_checks_the_constants_first() {
    given_events::<MisspeltEvent>(Vec::<GivenEvent>::new());
}

#[test]
fn describe_refuses_malformed_constants() {
    let refusal = |describe: fn()| {
        let error = std::panic::catch_unwind(describe).unwrap_err();
        error.downcast_ref::<String>().cloned().unwrap_or_default()
    };
    let no_tables = refusal(|| drop(describe::<NoTables>()));
    assert_eq!(
        no_tables,
        "projection no-tables: TABLES is empty; list at least one"
    );
    let no_types = refusal(|| drop(describe::<NoTypes>()));
    assert!(no_types.contains("AGGREGATE_TYPES is empty"), "{no_types}");
    let camel = refusal(|| drop(describe::<CamelName>()));
    assert!(
        camel.contains("NAME \"CamelName\" is not kebab-case"),
        "{camel}"
    );
    let version = refusal(|| drop(describe::<LooseVersion>()));
    assert!(
        version.contains("VERSION \"1.0\" is not a semver"),
        "{version}"
    );
}

#[test]
fn reads_see_the_batchs_earlier_writes() {
    given_events::<LedgerTotals>([recorded("a", 5), recorded("b", 1), recorded("a", -2)])
        .then_table("totals", [("a", json!(3)), ("b", json!(1))])
        .then_document("counts", "recorded", json!(3));
}

#[test]
fn batches_build_on_each_other_and_delete_removes() {
    given_events::<LedgerTotals>([recorded("a", 5), recorded("b", 1)])
        .when_events([cleared("a"), recorded("b", 2)])
        .then_no_document("totals", "a")
        .then_document("totals", "b", json!(3))
        .then_document("counts", "recorded", json!(3));
}

#[test]
fn the_envelope_carries_the_events_place_in_the_log() {
    let log = given_events::<EventLog>([
        recorded("a", 1),
        event("other-ledger", "a", "Cleared", json!(null)).at_ms(5),
        recorded("a", 2).at_position(10),
    ])
    .when_events([cleared("a")]);
    let keys: Vec<String> = log.table("log").into_iter().map(|(key, _)| key).collect();
    assert_eq!(keys, ["0", "1", "10", "11"]);
    log.then_document(
        "log",
        "10",
        json!({"aggregate_type": "ledger", "aggregate_id": "a", "stream_version": 2,
               "name": "Recorded", "schema_version": 3, "timestamp_ms": 1_700_000_010_000_u64}),
    )
    .then_document(
        "log",
        "1",
        json!({"aggregate_type": "other-ledger", "aggregate_id": "a", "stream_version": 1,
               "name": "Cleared", "schema_version": 1, "timestamp_ms": 5}),
    );
}

#[test]
fn only_the_declared_types_and_names_reach_the_projection() {
    // `RecordedOnly`'s enum has no `Cleared` and no `Opened`: they must not reach it.
    given_events::<RecordedOnly>([
        recorded("a", 1),
        cleared("a"),
        event("account", "a", "Opened", json!({})),
        event("account", "a", "Recorded", json!({"amount": 1})),
        recorded("a", 4),
    ])
    .then_table("sums", [("a", json!(5))]);
}

#[test]
fn an_event_that_does_not_decode_fails_the_batch_naming_it_and_its_position() {
    given_events::<LedgerTotals>([recorded("a", 5)])
        .when_events([
            recorded("a", 1),
            event("ledger", "a", "Recorded", json!({"amount": "1"})),
        ])
        .then_fails(
            "2: event Recorded v1 of ledger \"a\" (stream version 3) cannot be decoded: invalid \
             type: string \"1\", expected i64",
        )
        // Nothing of the failed batch is kept, not even the event before the bad one.
        .then_table("totals", [("a", json!(5))])
        .then_document("counts", "recorded", json!(1));
}

#[test]
fn an_event_unknown_to_the_enum_fails_the_batch() {
    given_events::<LedgerTotals>([event("ledger", "a", "Renamed", json!({}))])
        .then_fails("0: event Renamed v1 of ledger \"a\" (stream version 1) cannot be decoded: unknown variant `Renamed`");
}

#[test]
fn the_projections_error_fails_the_batch_at_its_position() {
    given_events::<LedgerTotals>([recorded("a", 5), recorded("a", 0).at_position(7)])
        .then_fails("7: ledger a recorded 0")
        .then_table("totals", Vec::<(&str, Value)>::new())
        // The failed batch's events are not in the log: the next batch comes first.
        .when_events([recorded("a", 2)])
        .then_document("totals", "a", json!(2));
}

#[test]
#[should_panic(expected = "the batch failed: 0: ledger a recorded 0")]
fn a_failure_must_be_checked_before_going_on() {
    given_events::<LedgerTotals>([recorded("a", 0)]).when_events([recorded("a", 1)]);
}

#[test]
#[should_panic(expected = "expected the batch to fail with \"recorded 0\", but it applied")]
fn then_fails_refuses_a_batch_that_applied() {
    given_events::<LedgerTotals>([recorded("a", 1)]).then_fails("recorded 0");
}

#[test]
#[should_panic(expected = "document \"a\" of table totals: expected 2, but there is none")]
fn then_document_reports_a_missing_document() {
    given_events::<LedgerTotals>([recorded("b", 1)]).then_document("totals", "a", json!(2));
}

#[test]
#[should_panic(expected = "documents of table totals")]
fn then_table_reports_other_documents() {
    given_events::<LedgerTotals>([recorded("a", 1), recorded("b", 1)])
        .then_table("totals", [("a", json!(1))]);
}

#[test]
#[should_panic(expected = "table \"total\" is not one of the projection's TABLES")]
fn the_harness_refuses_an_undeclared_table_in_a_check() {
    // A misspelt table would otherwise pass `then_no_document` vacuously.
    given_events::<LedgerTotals>([recorded("a", 1)]).then_no_document("total", "a");
}

#[test]
#[should_panic(expected = "table \"audit\" is not one of the projection's TABLES [\"t\"]")]
fn writing_an_undeclared_table_is_a_bug() {
    given_events::<UndeclaredTable>([recorded("a", 1)]);
}

#[test]
#[should_panic(expected = "one event at a time (right) writes different documents")]
fn state_kept_outside_the_documents_is_caught() {
    given_events::<Forgetful>([recorded("a", 1), recorded("a", 2)]);
}

#[test]
#[should_panic(expected = "positions must increase")]
fn positions_must_increase() {
    given_events::<LedgerTotals>([
        recorded("a", 1).at_position(5),
        recorded("a", 1).at_position(5),
    ]);
}

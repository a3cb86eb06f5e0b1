//! A misspelt event name in `EVENT_VERSIONS` or `UPCASTERS` is caught by `describe`
//! and by every harness entry point, with a message that names the bad entry and the
//! event variants.

use serde::{Deserialize, Serialize};
use tally_sdk::__private::wire;
use tally_sdk::serde_json::{Value, json};
use tally_sdk::testing::{given, given_stored, stored, upcast};
use tally_sdk::{Aggregate, Context, Rejection, Upcaster};

#[derive(Debug, Serialize, Deserialize)]
enum Command {
    Open,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Event {
    Opened { owner: String },
    Closed,
}

fn add_owner(mut data: Value) -> Result<Value, String> {
    data["owner"] = json!("nobody");
    Ok(data)
}

/// An aggregate named `$name` over the enums above, with the given schema tables.
macro_rules! account_with_tables {
    ($name:ident, $aggregate_type:literal, versions: $versions:expr, upcasters: $upcasters:expr) => {
        #[derive(Debug, Default, Serialize, Deserialize)]
        struct $name {
            open: bool,
        }

        impl Aggregate for $name {
            type Command = Command;
            type Event = Event;
            const AGGREGATE_TYPE: &'static str = $aggregate_type;
            const VERSION: &'static str = "2.0.0";
            const DESCRIPTION: &'static str = "An account with schema tables under test.";
            const EVENT_VERSIONS: &'static [(&'static str, u32)] = $versions;
            const UPCASTERS: &'static [Upcaster] = $upcasters;

            fn handle(&self, _ctx: &Context, _command: Command) -> Result<Vec<Event>, Rejection> {
                Ok(vec![Event::Opened {
                    owner: "ann".to_owned(),
                }])
            }

            fn apply(&mut self, event: Event) {
                self.open = matches!(event, Event::Opened { .. });
            }
        }
    };
}

account_with_tables!(
    Consistent,
    "consistent",
    versions: &[("Opened", 2)],
    upcasters: &[Upcaster::next("Opened", 1, add_owner)]
);

account_with_tables!(
    TypoInEventVersions,
    "typo-in-event-versions",
    versions: &[("Opend", 2)],
    upcasters: &[Upcaster::next("Opened", 1, add_owner)]
);

account_with_tables!(
    TypoInUpcasters,
    "typo-in-upcasters",
    versions: &[("Opened", 2)],
    upcasters: &[Upcaster::next("Opend", 1, add_owner)]
);

account_with_tables!(
    VersionNotRaised,
    "version-not-raised",
    versions: &[],
    upcasters: &[Upcaster::next("Opened", 1, add_owner)]
);

const TYPO_IN_EVENT_VERSIONS: &str = "typo-in-event-versions: EVENT_VERSIONS lists `Opend`, \
     which is not an event variant; the events are: Opened, Closed";

const TYPO_IN_UPCASTERS: &str = "typo-in-upcasters: UPCASTERS upcasts `Opend` v1 with \
     Upcaster::next, but `Opend` is not an event variant, and no Upcaster::replace retires it \
     at v2; the events are: Opened, Closed";

#[test]
fn consistent_tables_pass() {
    let info = wire::describe::<Consistent>();
    assert_eq!(info.events[0].version, 2);
    given::<Consistent>([])
        .when(Command::Open)
        .then_raw_events([stored("Opened", 2, json!({"owner": "ann"}))]);
}

#[test]
#[should_panic(
    expected = "typo-in-event-versions: EVENT_VERSIONS lists `Opend`, which is not an event variant; the events are: Opened, Closed"
)]
fn describe_names_a_misspelt_event_version() {
    wire::describe::<TypoInEventVersions>();
}

#[test]
#[should_panic(expected = "typo-in-upcasters: UPCASTERS upcasts `Opend` v1")]
fn describe_names_a_misspelt_upcaster() {
    wire::describe::<TypoInUpcasters>();
}

#[test]
#[should_panic(
    expected = "version-not-raised: UPCASTERS upcasts `Opened` v1, but the plugin writes `Opened` at v1"
)]
fn describe_names_an_upcaster_that_never_runs() {
    wire::describe::<VersionNotRaised>();
}

#[test]
fn the_harness_checks_the_tables_at_every_entry_point() {
    let entry_points: [(&str, fn()); 4] = [
        ("given", || {
            given::<TypoInEventVersions>([]);
        }),
        ("given_stored", || {
            given_stored::<TypoInEventVersions>([]);
        }),
        ("upcast", || {
            let _ = upcast::<TypoInEventVersions>(&stored("Closed", 1, json!({})));
        }),
        ("given with a bad upcaster", || {
            given::<TypoInUpcasters>([]);
        }),
    ];
    for (name, entry_point) in entry_points {
        let message = panic_message(entry_point);
        let expected = if name.contains("upcaster") {
            TYPO_IN_UPCASTERS
        } else {
            TYPO_IN_EVENT_VERSIONS
        };
        assert_eq!(message, expected, "{name}");
    }
}

/// The message `run` panics with.
fn panic_message(run: fn()) -> String {
    let payload = std::panic::catch_unwind(run).expect_err("the check panics");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| {
            payload
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
        })
        .expect("a text message")
}

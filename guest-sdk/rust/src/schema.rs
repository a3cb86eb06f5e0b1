//! Checks an aggregate's schema tables, [`Aggregate::EVENT_VERSIONS`] and
//! [`Aggregate::UPCASTERS`], against its event enum.
//!
//! A misspelt event name in either table compiles, and would silently write an event
//! at the wrong schema version or leave stored events without an upcaster. The names
//! of the event variants are known only to serde, at run time, so the tables cannot be
//! checked at compile time: `describe` checks them (the host calls it when it installs
//! a plugin), and so does the given/when/then harness, which makes `cargo test` of a
//! plugin fail on a bad table.

use std::fmt;

use crate::aggregate::Aggregate;
use crate::introspect::variant_names;
use crate::upcast::Upcaster;

/// What is wrong with an aggregate's schema tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SchemaError {
    /// `EVENT_VERSIONS` lists a name that is not an event variant.
    UnknownVersionedEvent {
        /// The bad entry's name.
        event: &'static str,
        /// The event variants' names.
        known: &'static [&'static str],
    },
    /// `EVENT_VERSIONS` lists the same event twice.
    DuplicateVersion {
        /// The event listed twice.
        event: &'static str,
    },
    /// A table gives an event version 0; versions start at 1.
    VersionZero {
        /// `EVENT_VERSIONS` or `UPCASTERS`.
        table: &'static str,
        /// The bad entry's name.
        event: &'static str,
    },
    /// `UPCASTERS` upcasts, with `Upcaster::next`, a name that is not an event variant
    /// and that no `Upcaster::replace` retires at the next version.
    UnknownUpcastEvent {
        /// The bad entry's name.
        event: &'static str,
        /// The bad entry's version.
        from_version: u32,
        /// The event variants' names.
        known: &'static [&'static str],
    },
    /// `UPCASTERS` has two upcasters for the same event and version.
    DuplicateUpcaster {
        /// The event upcast twice.
        event: &'static str,
        /// The version upcast twice.
        from_version: u32,
    },
    /// An upcaster reads a version the plugin writes (or a newer one), so it never runs.
    UpcasterNeverRuns {
        /// The bad entry's name.
        event: &'static str,
        /// The bad entry's version.
        from_version: u32,
        /// The version the plugin writes for `event`.
        current: u32,
    },
    /// An event is written above version 1, but no upcaster reads one of its older
    /// versions.
    MissingUpcaster {
        /// The event.
        event: &'static str,
        /// The older version no upcaster reads.
        from_version: u32,
        /// The version the plugin writes for `event`.
        current: u32,
        /// What `UPCASTERS` reads: (event, version).
        upcasters: Vec<(&'static str, u32)>,
    },
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownVersionedEvent { event, known } => write!(
                f,
                "EVENT_VERSIONS lists `{event}`, which is not an event variant; the events are: {}",
                known.join(", ")
            ),
            Self::DuplicateVersion { event } => {
                write!(f, "EVENT_VERSIONS lists `{event}` more than once")
            }
            Self::VersionZero { table, event } => write!(
                f,
                "{table} gives `{event}` version 0; schema versions start at 1"
            ),
            Self::UnknownUpcastEvent {
                event,
                from_version,
                known,
            } => write!(
                f,
                "UPCASTERS upcasts `{event}` v{from_version} with Upcaster::next, but `{event}` is \
                 not an event variant, and no Upcaster::replace retires it at v{}; the events are: {}",
                from_version + 1,
                known.join(", ")
            ),
            Self::DuplicateUpcaster {
                event,
                from_version,
            } => write!(
                f,
                "UPCASTERS has more than one upcaster for `{event}` v{from_version}"
            ),
            Self::UpcasterNeverRuns {
                event,
                from_version,
                current,
            } => write!(
                f,
                "UPCASTERS upcasts `{event}` v{from_version}, but the plugin writes `{event}` at \
                 v{current} (EVENT_VERSIONS), so that upcaster never runs"
            ),
            Self::MissingUpcaster {
                event,
                from_version,
                current,
                upcasters,
            } => write!(
                f,
                "the plugin writes `{event}` at v{current} (EVENT_VERSIONS), but no upcaster reads \
                 `{event}` v{from_version}; UPCASTERS reads: {}",
                describe_upcasters(upcasters)
            ),
        }
    }
}

impl std::error::Error for SchemaError {}

/// Lists upcaster entries as `Name v1, Other v2`, or `nothing`.
fn describe_upcasters(upcasters: &[(&'static str, u32)]) -> String {
    if upcasters.is_empty() {
        return "nothing".to_owned();
    }
    upcasters
        .iter()
        .map(|(event, version)| format!("{event} v{version}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks `A`'s `EVENT_VERSIONS` and `UPCASTERS` against the variants of `A::Event`.
pub(crate) fn check_schema<A: Aggregate>() -> Result<(), SchemaError> {
    let tables = Tables {
        events: variant_names::<A::Event>(),
        versions: A::EVENT_VERSIONS,
        upcasters: A::UPCASTERS,
    };
    tables.check()
}

/// Panics with the aggregate's name and the first problem of its schema tables.
///
/// # Panics
/// If [`check_schema`] finds a problem.
#[track_caller]
pub(crate) fn assert_schema<A: Aggregate>() {
    if let Err(error) = check_schema::<A>() {
        panic!("{}: {error}", A::AGGREGATE_TYPE);
    }
}

/// An aggregate's event names and schema tables.
struct Tables<'a> {
    events: &'static [&'static str],
    versions: &'a [(&'static str, u32)],
    upcasters: &'a [Upcaster],
}

impl Tables<'_> {
    /// Runs every check; the first problem found is the answer.
    fn check(&self) -> Result<(), SchemaError> {
        self.check_versions()?;
        self.check_upcasters()?;
        self.check_upcaster_chains()
    }

    /// Every `EVENT_VERSIONS` entry names an event variant once, at version 1 or more.
    fn check_versions(&self) -> Result<(), SchemaError> {
        for (index, &(event, version)) in self.versions.iter().enumerate() {
            if !self.events.contains(&event) {
                return Err(SchemaError::UnknownVersionedEvent {
                    event,
                    known: self.events,
                });
            }
            if version == 0 {
                let table = "EVENT_VERSIONS";
                return Err(SchemaError::VersionZero { table, event });
            }
            if self.versions[..index]
                .iter()
                .any(|&(seen, _)| seen == event)
            {
                return Err(SchemaError::DuplicateVersion { event });
            }
        }
        Ok(())
    }

    /// Every upcaster reads an older version of an event variant, or is part of the
    /// chain that retires a former event with `Upcaster::replace`; no two read the
    /// same event and version.
    fn check_upcasters(&self) -> Result<(), SchemaError> {
        for (index, upcaster) in self.upcasters.iter().enumerate() {
            let (event, from_version) = (upcaster.event(), upcaster.from_version());
            if from_version == 0 {
                let table = "UPCASTERS";
                return Err(SchemaError::VersionZero { table, event });
            }
            if self.upcasters[..index]
                .iter()
                .any(|seen| seen.event() == event && seen.from_version() == from_version)
            {
                return Err(SchemaError::DuplicateUpcaster {
                    event,
                    from_version,
                });
            }
            self.check_upcaster_target(upcaster)?;
        }
        Ok(())
    }

    /// An upcaster of an event variant reads a version below the current one; an
    /// upcaster of a former event either replaces it or leads to one that does.
    fn check_upcaster_target(&self, upcaster: &Upcaster) -> Result<(), SchemaError> {
        let (event, from_version) = (upcaster.event(), upcaster.from_version());
        if let Some(current) = self.current_version(event) {
            if from_version >= current {
                return Err(SchemaError::UpcasterNeverRuns {
                    event,
                    from_version,
                    current,
                });
            }
            return Ok(());
        }
        if upcaster.replaces() || self.upcaster_for(event, from_version + 1).is_some() {
            return Ok(());
        }
        Err(SchemaError::UnknownUpcastEvent {
            event,
            from_version,
            known: self.events,
        })
    }

    /// Every version below an event's current one has an upcaster.
    fn check_upcaster_chains(&self) -> Result<(), SchemaError> {
        for &(event, current) in self.versions {
            let missing = (1..current).find(|&version| self.upcaster_for(event, version).is_none());
            if let Some(from_version) = missing {
                return Err(SchemaError::MissingUpcaster {
                    event,
                    from_version,
                    current,
                    upcasters: self
                        .upcasters
                        .iter()
                        .map(|upcaster| (upcaster.event(), upcaster.from_version()))
                        .collect(),
                });
            }
        }
        Ok(())
    }

    /// The version the plugin writes for `event`, or `None` if it is not a variant.
    fn current_version(&self, event: &str) -> Option<u32> {
        self.events.contains(&event).then(|| {
            self.versions
                .iter()
                .find(|&&(name, _)| name == event)
                .map_or(1, |&(_, version)| version)
        })
    }

    /// The upcaster that reads `event` at `version`, if any.
    fn upcaster_for(&self, event: &str, version: u32) -> Option<&Upcaster> {
        self.upcasters
            .iter()
            .find(|upcaster| upcaster.event() == event && upcaster.from_version() == version)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::upcast::JsonEvent;

    const EVENTS: &[&str] = &["Opened", "Noted", "Closed"];

    fn keep(data: Value) -> Result<Value, String> {
        Ok(data)
    }

    fn drop_it(_data: Value) -> Result<Vec<JsonEvent>, String> {
        Ok(Vec::new())
    }

    fn check(versions: &[(&'static str, u32)], upcasters: &[Upcaster]) -> Result<(), SchemaError> {
        Tables {
            events: EVENTS,
            versions,
            upcasters,
        }
        .check()
    }

    #[test]
    fn empty_tables_are_consistent() {
        assert_eq!(check(&[], &[]), Ok(()));
    }

    #[test]
    fn a_versioned_event_with_its_chain_is_consistent() {
        let upcasters = &[
            Upcaster::next("Opened", 1, keep),
            Upcaster::next("Opened", 2, keep),
        ];
        assert_eq!(check(&[("Opened", 3)], upcasters), Ok(()));
    }

    #[test]
    fn a_former_event_may_be_replaced_at_the_end_of_its_chain() {
        let upcasters = &[
            Upcaster::next("Legacy", 1, keep),
            Upcaster::replace("Legacy", 2, drop_it),
        ];
        assert_eq!(check(&[], upcasters), Ok(()));
    }

    #[test]
    fn a_misspelt_versioned_event_names_the_entry_and_the_events() {
        let error = check(&[("Opend", 2)], &[Upcaster::next("Opened", 1, keep)]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "EVENT_VERSIONS lists `Opend`, which is not an event variant; \
             the events are: Opened, Noted, Closed"
        );
    }

    #[test]
    fn a_version_listed_twice_is_an_error() {
        let upcasters = &[Upcaster::next("Opened", 1, keep)];
        let error = check(&[("Opened", 2), ("Opened", 2)], upcasters).unwrap_err();
        assert_eq!(error, SchemaError::DuplicateVersion { event: "Opened" });
    }

    #[test]
    fn version_zero_is_an_error_in_either_table() {
        let error = check(&[("Opened", 0)], &[]).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("EVENT_VERSIONS gives `Opened` version 0")
        );
        let error = check(&[], &[Upcaster::replace("Legacy", 0, drop_it)]).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("UPCASTERS gives `Legacy` version 0")
        );
    }

    #[test]
    fn a_misspelt_upcaster_names_the_entry_and_the_events() {
        let error = check(&[("Opened", 2)], &[Upcaster::next("Opend", 1, keep)]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "UPCASTERS upcasts `Opend` v1 with Upcaster::next, but `Opend` is not an event \
             variant, and no Upcaster::replace retires it at v2; the events are: Opened, Noted, \
             Closed"
        );
    }

    #[test]
    fn two_upcasters_for_one_version_are_an_error() {
        let upcasters = &[
            Upcaster::next("Opened", 1, keep),
            Upcaster::next("Opened", 1, keep),
        ];
        let error = check(&[("Opened", 2)], upcasters).unwrap_err();
        assert_eq!(
            error.to_string(),
            "UPCASTERS has more than one upcaster for `Opened` v1"
        );
    }

    #[test]
    fn an_upcaster_from_the_written_version_never_runs() {
        // The upcaster was written, but EVENT_VERSIONS was not raised.
        let error = check(&[], &[Upcaster::next("Noted", 1, keep)]).unwrap_err();
        assert_eq!(
            error,
            SchemaError::UpcasterNeverRuns {
                event: "Noted",
                from_version: 1,
                current: 1
            }
        );
    }

    #[test]
    fn a_gap_in_an_upcaster_chain_names_the_missing_version() {
        let upcasters = &[
            Upcaster::next("Opened", 2, keep),
            Upcaster::replace("Opend", 1, drop_it),
        ];
        let error = check(&[("Opened", 3)], upcasters).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the plugin writes `Opened` at v3 (EVENT_VERSIONS), but no upcaster reads `Opened` \
             v1; UPCASTERS reads: Opened v2, Opend v1"
        );
    }

    #[test]
    fn a_raised_version_without_upcasters_says_so() {
        let error = check(&[("Closed", 2)], &[]).unwrap_err();
        assert!(
            error.to_string().ends_with("UPCASTERS reads: nothing"),
            "{error}"
        );
    }
}

//! Schema evolution: upcasters lift stored events of old schema versions to the
//! current ones, as plain functions on JSON values.

use serde_json::Value;

/// An event as a JSON value with its name and schema version: what an upcaster
/// that splits or renames an event returns.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonEvent {
    /// Event name.
    pub name: String,
    /// Schema version `data` is written in.
    pub version: u32,
    /// The event's fields.
    pub data: Value,
}

/// How an [`Upcaster`] rewrites the data of one event.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Same event name, data rewritten to `from_version + 1`.
    Next(fn(Value) -> Result<Value, String>),
    /// Any number of events, named and versioned by the function.
    Replace(fn(Value) -> Result<Vec<JsonEvent>, String>),
}

/// Lifts event `event` at schema version `from_version` one step.
///
/// Upcasters chain: a v1 event goes through the `1 -> 2` upcaster, then the
/// `2 -> 3` one, until it reaches the version in
/// [`Aggregate::EVENT_VERSIONS`](crate::Aggregate::EVENT_VERSIONS).
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    event: &'static str,
    from_version: u32,
    step: Step,
}

impl Upcaster {
    /// Rewrites the data of `event` at `from_version` into the data of the same
    /// event at `from_version + 1`.
    pub const fn next(
        event: &'static str,
        from_version: u32,
        upcast: fn(Value) -> Result<Value, String>,
    ) -> Self {
        Self {
            event,
            from_version,
            step: Step::Next(upcast),
        }
    }

    /// Replaces `event` at `from_version` by the events the function returns (in
    /// order; possibly several, possibly none, possibly under other names). They are
    /// upcast further if they are not current.
    pub const fn replace(
        event: &'static str,
        from_version: u32,
        upcast: fn(Value) -> Result<Vec<JsonEvent>, String>,
    ) -> Self {
        Self {
            event,
            from_version,
            step: Step::Replace(upcast),
        }
    }

    /// The event name this upcaster reads.
    pub const fn event(&self) -> &'static str {
        self.event
    }

    /// The schema version this upcaster reads.
    pub const fn from_version(&self) -> u32 {
        self.from_version
    }

    /// Whether it was made by [`Upcaster::replace`] (and so may retire `event`).
    pub(crate) const fn replaces(&self) -> bool {
        matches!(self.step, Step::Replace(_))
    }
}

/// Upcasting stops with an error after this many steps for one stored event: a
/// cycle among upcasters, or a runaway split, is a plugin bug.
pub(crate) const MAX_UPCAST_STEPS: usize = 64;

/// Lifts `event` to current schema versions.
///
/// `current_version` returns the version the plugin writes for a name, or `None`
/// for a name the plugin no longer knows (such events must be replaced by an
/// upcaster).
pub(crate) fn upcast_event(
    event: JsonEvent,
    upcasters: &[Upcaster],
    current_version: impl Fn(&str) -> Option<u32>,
) -> Result<Vec<JsonEvent>, String> {
    let mut done = Vec::new();
    // Pending events, last one first, so that split results keep their order.
    let mut pending = vec![event];
    let mut steps = 0;
    while let Some(event) = pending.pop() {
        match current_version(&event.name) {
            Some(current) if event.version == current => {
                done.push(event);
                continue;
            }
            Some(current) if event.version > current => {
                return Err(format!(
                    "event {} v{} is newer than this plugin, which writes v{current}",
                    event.name, event.version
                ));
            }
            _ => {}
        }
        steps += 1;
        if steps > MAX_UPCAST_STEPS {
            return Err(format!(
                "upcasting did not finish within {MAX_UPCAST_STEPS} steps"
            ));
        }
        let upcaster = upcasters
            .iter()
            .find(|u| u.event == event.name && u.from_version == event.version)
            .ok_or_else(|| match current_version(&event.name) {
                Some(current) => format!(
                    "no upcaster for {} v{} (current is v{current})",
                    event.name, event.version
                ),
                None => format!("unknown event {} v{}", event.name, event.version),
            })?;
        let context =
            |error: String| format!("upcasting {} v{}: {error}", event.name, event.version);
        match upcaster.step {
            Step::Next(upcast) => {
                let data = upcast(event.data).map_err(context)?;
                pending.push(JsonEvent {
                    name: event.name,
                    version: event.version + 1,
                    data,
                });
            }
            Step::Replace(upcast) => {
                let replacements = upcast(event.data).map_err(context)?;
                pending.extend(replacements.into_iter().rev());
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(name: &str, version: u32, data: Value) -> JsonEvent {
        JsonEvent {
            name: name.to_owned(),
            version,
            data,
        }
    }

    /// Current versions: Opened v3, Noted v1; `Legacy` is no longer known.
    fn current(name: &str) -> Option<u32> {
        match name {
            "Opened" => Some(3),
            "Noted" => Some(1),
            _ => None,
        }
    }

    fn add_currency(mut data: Value) -> Result<Value, String> {
        data["currency"] = json!("USD");
        Ok(data)
    }

    fn add_owner(mut data: Value) -> Result<Value, String> {
        data["owner"] = json!("nobody");
        Ok(data)
    }

    fn split_legacy(data: Value) -> Result<Vec<JsonEvent>, String> {
        Ok(vec![event("Opened", 1, json!({})), event("Noted", 1, data)])
    }

    fn refuse(_data: Value) -> Result<Value, String> {
        Err("no can do".to_owned())
    }

    const CHAIN: &[Upcaster] = &[
        Upcaster::next("Opened", 1, add_currency),
        Upcaster::next("Opened", 2, add_owner),
        Upcaster::replace("Legacy", 1, split_legacy),
    ];

    #[test]
    fn a_current_event_comes_back_unchanged() {
        let opened = event("Opened", 3, json!({"x": 1}));
        assert_eq!(
            upcast_event(opened.clone(), CHAIN, current).unwrap(),
            [opened]
        );
    }

    #[test]
    fn upcasters_chain_until_the_current_version() {
        let upcast = upcast_event(event("Opened", 1, json!({})), CHAIN, current).unwrap();
        assert_eq!(
            upcast,
            [event(
                "Opened",
                3,
                json!({"currency": "USD", "owner": "nobody"})
            )]
        );
    }

    #[test]
    fn a_replaced_event_becomes_several_in_order_each_upcast() {
        let upcast =
            upcast_event(event("Legacy", 1, json!({"text": "hi"})), CHAIN, current).unwrap();
        assert_eq!(
            upcast,
            [
                event("Opened", 3, json!({"currency": "USD", "owner": "nobody"})),
                event("Noted", 1, json!({"text": "hi"}))
            ]
        );
    }

    #[test]
    fn an_event_newer_than_the_plugin_is_an_error() {
        let error = upcast_event(event("Opened", 4, json!({})), CHAIN, current).unwrap_err();
        assert_eq!(
            error,
            "event Opened v4 is newer than this plugin, which writes v3"
        );
    }

    #[test]
    fn a_missing_upcaster_is_an_error() {
        let error = upcast_event(event("Opened", 0, json!({})), CHAIN, current).unwrap_err();
        assert_eq!(error, "no upcaster for Opened v0 (current is v3)");
    }

    #[test]
    fn an_unknown_event_is_an_error() {
        let error = upcast_event(event("Gone", 1, json!({})), CHAIN, current).unwrap_err();
        assert_eq!(error, "unknown event Gone v1");
    }

    #[test]
    fn an_upcaster_error_names_the_event() {
        let failing = [Upcaster::next("Opened", 1, refuse)];
        let error = upcast_event(event("Opened", 1, json!({})), &failing, current).unwrap_err();
        assert_eq!(error, "upcasting Opened v1: no can do");
    }

    #[test]
    fn a_cycle_among_upcasters_stops_with_an_error() {
        fn back_to_legacy(data: Value) -> Result<Vec<JsonEvent>, String> {
            Ok(vec![event("Legacy", 1, data)])
        }
        let cycle = [Upcaster::replace("Legacy", 1, back_to_legacy)];
        let error = upcast_event(event("Legacy", 1, json!({})), &cycle, current).unwrap_err();
        assert!(error.contains("did not finish"), "{error}");
    }
}

//! The [`Aggregate`] trait a plugin implements, and the values it exchanges.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::upcast::Upcaster;

/// The domain logic of one aggregate type: decide with [`handle`](Self::handle),
/// evolve with [`apply`](Self::apply).
///
/// `Self` is the state. It is stored between calls as its serde JSON encoding, so
/// it must be `Serialize + DeserializeOwned`, and `Default` is the state before any
/// event. Commands and events are plain serde enums in serde's default (externally
/// tagged) representation: the variant name is the command or event name on the
/// wire and the variant's fields are its JSON data. `#[serde(rename)]` and
/// `#[serde(default)]` work; `#[serde(tag = ..)]` or `untagged` do not.
pub trait Aggregate: Default + Serialize + DeserializeOwned {
    /// What a client asks for: a serde enum, one variant per command.
    type Command: Serialize + DeserializeOwned;

    /// What happened: a serde enum, one variant per event.
    type Event: Serialize + DeserializeOwned;

    /// Aggregate type in kebab-case, e.g. `bank-account`.
    const AGGREGATE_TYPE: &'static str;

    /// Plugin version (semver); usually `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;

    /// One human-readable sentence about the aggregate.
    const DESCRIPTION: &'static str;

    /// Current schema version of each event whose version is above 1. Events not
    /// listed are at version 1.
    const EVENT_VERSIONS: &'static [(&'static str, u32)] = &[];

    /// Functions that lift stored events of older schema versions one step towards
    /// the current one. See [`Upcaster`].
    const UPCASTERS: &'static [Upcaster] = &[];

    /// Whether a command whose data has a field the command does not have is refused
    /// with [`INVALID_COMMAND`](crate::INVALID_COMMAND), the message naming the field
    /// (`Deposit: unknown field "amout" (expected "amount")`); nested structs in the
    /// data are checked too. Default `true`: a misspelt optional field would
    /// otherwise be dropped without a word, and the command run without it.
    ///
    /// Set it to `false` to ignore unknown fields in every command (say, when clients
    /// send fields meant for others). To take extra fields in one command only, give
    /// its variant a `#[serde(flatten)]` map field: what it collects is not unknown
    /// (nor is anything in a variant with a flattened field checked).
    const DENY_UNKNOWN_FIELDS: bool = true;

    /// Decides a command against the current state: the events to record, or why
    /// not. Must be deterministic: the time is `ctx.now_ms`, nothing else.
    fn handle(&self, ctx: &Context, command: Self::Command) -> Result<Vec<Self::Event>, Rejection>;

    /// Evolves the state by one event. Events reaching it were produced by
    /// `handle`, so it does not validate; a broken invariant here is a bug and may
    /// panic.
    fn apply(&mut self, event: Self::Event);

    /// The state as JSON for queries. Defaults to the state's serde encoding.
    fn state_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|error| {
            panic!(
                "the state of {} cannot be rendered as JSON: {error}",
                Self::AGGREGATE_TYPE
            )
        })
    }
}

/// What the host tells `handle` about the call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Context {
    /// Identity of the aggregate instance (its stream).
    pub aggregate_id: String,
    /// Number of events already stored in the stream; 0 for a new aggregate.
    pub stream_version: u64,
    /// The host's clock, milliseconds since the Unix epoch (UTC).
    pub now_ms: u64,
}

/// Why a command was refused: a stable kebab-case `code` and a human `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Stable, machine-readable, kebab-case, e.g. `insufficient-funds`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl Rejection {
    /// A rejection with the given code and message.
    ///
    /// # Panics
    /// In debug builds, if `code` is not kebab-case (lowercase ASCII letters and
    /// digits in words joined by single `-`).
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        let code = code.into();
        debug_assert!(
            is_kebab_case(&code),
            "rejection code `{code}` is not kebab-case"
        );
        Self {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Rejection {}

/// Whether `code` is kebab-case: non-empty words of `[a-z0-9]` joined by single `-`.
pub(crate) fn is_kebab_case(code: &str) -> bool {
    !code.is_empty()
        && code.split('-').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kebab_case_accepts_lowercase_words_joined_by_dashes() {
        assert!(is_kebab_case("insufficient-funds"));
        assert!(is_kebab_case("e2e"));
    }

    #[test]
    fn kebab_case_rejects_other_spellings() {
        for code in [
            "",
            "Insufficient",
            "snake_case",
            "-leading",
            "trailing-",
            "double--dash",
            "sp ace",
        ] {
            assert!(!is_kebab_case(code), "{code:?} passed");
        }
    }

    #[test]
    fn rejection_displays_code_then_message() {
        let rejection = Rejection::new("insufficient-funds", "balance 5 < 10");
        assert_eq!(rejection.to_string(), "insufficient-funds: balance 5 < 10");
    }
}

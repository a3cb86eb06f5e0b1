//! Decoding a command as a client sent it: strictly, with rejection messages for the
//! person who sent it.
//!
//! A command's fields come as a JSON object; a field given twice is refused, and so,
//! unless the plugin opts out ([`Aggregate::DENY_UNKNOWN_FIELDS`]), is a field the
//! command does not have: a misspelt optional field would otherwise be dropped without
//! a word and the command run without it. Unknown fields are found with
//! `serde_ignored`, which reports every field the derived `Deserialize` skips, in
//! nested structs too. serde's own `deny_unknown_fields` cannot do this for a plugin:
//! it is an attribute the author would have to put on every variant's fields, and it
//! does not work together with `#[serde(flatten)]`. A flattened field takes whatever
//! it is given, so a variant with one reports no unknown field.
//!
//! Messages name the command and the field as the client wrote them, without serde's
//! positions and Rust type names: `Deposit: missing field "amount"`,
//! `Deposit: unknown field "extra" (expected "amount")`,
//! `unknown command "Transfer" (expected one of "OpenAccount", "Deposit")`.
//!
//! [`Aggregate::DENY_UNKNOWN_FIELDS`]: crate::Aggregate::DENY_UNKNOWN_FIELDS

use serde::de::{DeserializeOwned, IgnoredAny};
use serde_ignored::Path;

use super::named::NamedVariant;
use crate::introspect::{variant_fields, variant_names};

/// The messages of serde that name a field or variant in backticks, which become JSON
/// quotes; elsewhere serde's backticks surround a value (``integer `5` ``) and go.
const NAMING_MESSAGES: &[&str] = &[
    "missing field ",
    "duplicate field ",
    "unknown field ",
    "unknown variant ",
];

/// Builds the command named `name` from its data bytes as a client sent them (empty
/// bytes mean `null`). With `deny_unknown_fields`, a field the command does not have
/// is an error. The error is the rejection message.
pub(crate) fn decode_command<T: DeserializeOwned>(
    name: &str,
    data: &[u8],
    deny_unknown_fields: bool,
) -> Result<T, String> {
    let data = data.trim_ascii();
    let variant = NamedVariant {
        name,
        data,
        strict: true,
    };
    if !deny_unknown_fields {
        return T::deserialize(variant).map_err(|error| failure::<T>(name, data, &error));
    }
    let mut unknown: Option<Vec<String>> = None;
    let decoded = serde_ignored::deserialize(variant, |path| {
        unknown.get_or_insert_with(|| segments(&path));
    });
    match (decoded, unknown) {
        (Ok(command), None) => Ok(command),
        (Ok(_), Some(field)) => Err(unknown_field::<T>(name, &field)),
        (Err(error), None) => Err(failure::<T>(name, data, &error)),
        // The unknown field is the likelier cause (a misspelt required field is also
        // missing): named first.
        (Err(error), Some(field)) => Err(format!(
            "{}; {}",
            unknown_field::<T>(name, &field),
            detail(&error)
        )),
    }
}

/// The message of a command that does not decode: an unknown command name, data
/// that is not JSON, or serde's complaint about the fields.
fn failure<T: DeserializeOwned>(name: &str, data: &[u8], error: &serde_json::Error) -> String {
    let commands = variant_names::<T>();
    if !commands.contains(&name) {
        return format!("unknown command {} ({})", quoted(name), expected(commands));
    }
    let json = if data.is_empty() { b"null" } else { data };
    // Only on this error path: data that is not one JSON value is reported as such,
    // whatever the command expected.
    if let Err(syntax) = serde_json::from_slice::<IgnoredAny>(json) {
        return format!("{name}: data is not JSON: {syntax}");
    }
    format!("{name}: {}", detail(error))
}

/// The message of a field the command does not have, at `field` (names and indexes
/// from the command's data down). A field of the command's own data lists the
/// fields it has.
fn unknown_field<T: DeserializeOwned>(name: &str, field: &[String]) -> String {
    let path = quoted(&field.join("."));
    match (field, variant_fields::<T>(name)) {
        ([_], Some(fields)) => format!("{name}: unknown field {path} ({})", expected(fields)),
        _ => format!("{name}: unknown field {path}"),
    }
}

/// The names and indexes on the way to an ignored field: `["to", "street"]`.
fn segments(path: &Path<'_>) -> Vec<String> {
    let (parent, segment) = match path {
        Path::Root => return Vec::new(),
        Path::Seq { parent, index } => (parent, index.to_string()),
        Path::Map { parent, key } => (parent, key.clone()),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => {
            return segments(parent);
        }
    };
    let mut segments = segments(parent);
    segments.push(segment);
    segments
}

/// serde's message without the position in the data (the data is one short line of
/// JSON), names in JSON quotes and values without serde's backticks.
fn detail(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    let message = message.strip_suffix(&position).unwrap_or(&message);
    if NAMING_MESSAGES
        .iter()
        .any(|prefix| message.starts_with(prefix))
    {
        message.replace('`', "\"")
    } else {
        message.replace('`', "")
    }
}

/// What was expected, from a list of names: `expected "a"`, `expected one of "a", "b"`.
fn expected(names: &[&str]) -> String {
    match names {
        [] => "expected none".to_owned(),
        [name] => format!("expected {}", quoted(name)),
        _ => {
            let names: Vec<String> = names.iter().map(|name| quoted(name)).collect();
            format!("expected one of {}", names.join(", "))
        }
    }
}

/// A name in JSON quotes, as the client wrote it.
fn quoted(name: &str) -> String {
    serde_json::to_string(name).expect("a string serializes")
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Address {
        street: String,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    enum Command {
        Deposit {
            amount: i64,
        },
        Note {
            text: String,
            #[serde(default)]
            tags: Vec<String>,
        },
        Move(Address),
        Ship {
            to: Address,
        },
        Tagged {
            id: i64,
            #[serde(flatten)]
            extra: std::collections::BTreeMap<String, i64>,
        },
        Close,
    }

    fn strict(name: &str, data: &str) -> Result<Command, String> {
        decode_command(name, data.as_bytes(), true)
    }

    #[test]
    fn an_unknown_field_is_refused_naming_it_and_the_fields() {
        assert_eq!(
            strict("Deposit", r#"{"amount": 1, "extra": 1}"#),
            Err(r#"Deposit: unknown field "extra" (expected "amount")"#.to_owned())
        );
        assert_eq!(
            strict("Note", r#"{"text": "hi", "tag": ["a"]}"#),
            Err(r#"Note: unknown field "tag" (expected one of "text", "tags")"#.to_owned())
        );
        assert_eq!(
            strict("Move", r#"{"street": "Main", "number": 1}"#),
            Err(r#"Move: unknown field "number" (expected "street")"#.to_owned())
        );
    }

    #[test]
    fn an_unknown_nested_field_is_named_by_its_path() {
        assert_eq!(
            strict("Ship", r#"{"to": {"street": "Main", "zip": 1}}"#),
            Err(r#"Ship: unknown field "to.zip""#.to_owned())
        );
    }

    #[test]
    fn a_misspelt_required_field_is_named_before_the_missing_one() {
        assert_eq!(
            strict("Deposit", r#"{"amuont": 1}"#),
            Err(
                r#"Deposit: unknown field "amuont" (expected "amount"); missing field "amount""#
                    .to_owned()
            )
        );
    }

    #[test]
    fn unknown_fields_pass_when_the_plugin_allows_them() {
        let lenient = decode_command::<Command>("Deposit", br#"{"amount": 1, "extra": 1}"#, false);
        assert_eq!(lenient, Ok(Command::Deposit { amount: 1 }));
    }

    #[test]
    fn flattened_fields_take_what_they_are_given() {
        let mut extra = std::collections::BTreeMap::new();
        extra.insert("b".to_owned(), 2);
        assert_eq!(
            strict("Tagged", r#"{"id": 1, "b": 2}"#),
            Ok(Command::Tagged { id: 1, extra })
        );
    }

    #[test]
    fn messages_speak_of_commands_and_fields_not_rust_types() {
        let cases = [
            ("Deposit", "{}", r#"Deposit: missing field "amount""#),
            (
                "Deposit",
                r#"{"amount": 1, "amount": 2}"#,
                r#"Deposit: duplicate field "amount""#,
            ),
            (
                "Deposit",
                r#"{"amount": "five"}"#,
                r#"Deposit: invalid type: string "five", expected i64"#,
            ),
            (
                "Deposit",
                r#"{"amount": 1.5}"#,
                "Deposit: invalid type: floating point 1.5, expected i64",
            ),
            (
                "Deposit",
                "5",
                "Deposit: takes its fields as a JSON object, got a number",
            ),
            (
                "Deposit",
                "",
                "Deposit: takes its fields as a JSON object, got no data",
            ),
            (
                "Close",
                r#"{"now": true}"#,
                "Close: takes no data (no data, null or {}), got an object",
            ),
            (
                "Transfer",
                "{}",
                r#"unknown command "Transfer" (expected one of "Deposit", "Note", "Move", "Ship", "Tagged", "Close")"#,
            ),
        ];
        for (name, data, message) in cases {
            assert_eq!(strict(name, data), Err(message.to_owned()), "{name} {data}");
        }
    }

    #[test]
    fn data_that_is_not_json_says_so_with_the_position() {
        let error = strict("Deposit", r#"{"amount": }"#).unwrap_err();
        assert!(
            error.starts_with("Deposit: data is not JSON: expected value at line 1 column"),
            "{error}"
        );
    }
}

//! Mapping between serde enums and the wire shape `name` + JSON `data`.
//!
//! A variant `Deposit { amount: 5 }` travels as name `Deposit`, data `{"amount":5}`;
//! a unit variant `CloseAccount` travels with data `{}` (`null` and empty bytes are
//! accepted on input). This is serde's externally tagged enum encoding, taken apart:
//! authors derive `Serialize`/`Deserialize` with no attributes. Both directions work
//! on the data alone, in one pass and without an intermediate JSON tree or document:
//! they run on every command and, for events, in the inner loop of every fold.

mod command;
mod named;
mod split;

use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::Value;

pub(crate) use command::decode_command;
use named::NamedVariant;
use split::{NOT_A_VARIANT, VariantSplitter};

/// Splits an enum value into its variant name and its data as JSON bytes, in one
/// serialization that writes only the data. The data is serde's output as it is: a
/// variant whose serialization repeats a key (a `#[serde(flatten)]` map holding a
/// field's name) keeps both, and decoding it later refuses the duplicate.
pub(crate) fn to_named<T: Serialize>(value: &T) -> Result<(String, Vec<u8>), String> {
    let mut variant = None;
    let mut json = serde_json::Serializer::new(Vec::new());
    let split = value.serialize(VariantSplitter {
        variant: &mut variant,
        json: &mut json,
    });
    match (split, variant) {
        (Ok(()), Some(name)) => Ok((name.to_owned(), json.into_inner())),
        (Err(error), _) if error.to_string() != NOT_A_VARIANT => Err(error.to_string()),
        _ => Err(match serde_json::to_vec(value) {
            Ok(json) => format!(
                "{NOT_A_VARIANT}, got the JSON value {}",
                String::from_utf8_lossy(&json)
            ),
            Err(error) => format!("{NOT_A_VARIANT}: {error}"),
        }),
    }
}

/// Parses wire data bytes into a JSON tree (for upcasters): empty bytes mean "no
/// data" (`null`).
pub(crate) fn parse_data(data: &[u8]) -> Result<Value, String> {
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(data).map_err(|error| format!("data is not JSON: {error}"))
}

/// Builds the enum value named `name` from its wire data bytes (empty bytes mean
/// `null`): this is the inner loop of a fold, used for events (which the plugin's own
/// serializer wrote). Unit variants accept `null` and `{}`. Less strict than
/// [`decode_command`] (which decodes what clients send): a struct variant's fields
/// may also come as an array, as serde_json allows for structs, and fields it does
/// not have are ignored.
pub(crate) fn decode_named<T: DeserializeOwned>(name: &str, data: &[u8]) -> Result<T, String> {
    let data = data.trim_ascii();
    let strict = false;
    T::deserialize(NamedVariant { name, data, strict }).map_err(|error| {
        // Data that is not one JSON value is reported as such, whatever the type
        // expected; the check runs only on this error path.
        let json = if data.is_empty() {
            b"null".as_slice()
        } else {
            data
        };
        match serde_json::from_slice::<IgnoredAny>(json) {
            Err(syntax) => format!("data is not JSON: {syntax}"),
            Ok(_) => error.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Sample {
        Unit,
        Fields { amount: i64 },
        Optional { note: Option<String> },
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shapes {
        Rename(String),
        Move(i64, i64),
        Amount(i64),
        Maybe(Option<i64>),
        Nested(Inner),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Inner {
        a: i64,
    }

    #[test]
    fn newtype_and_tuple_commands_round_trip() {
        for command in [
            Shapes::Rename("bob".into()),
            Shapes::Move(1, 2),
            Shapes::Amount(5),
            Shapes::Maybe(None),
            Shapes::Maybe(Some(3)),
            Shapes::Nested(Inner { a: 7 }),
        ] {
            let (name, data) = to_named(&command).unwrap();
            assert_eq!(
                decode_command::<Shapes>(&name, &data, true).unwrap(),
                command,
                "{name} {}",
                String::from_utf8_lossy(&data)
            );
        }
        let error = decode_command::<Shapes>("Move", b"[1]", true).unwrap_err();
        assert!(error.contains("invalid length"), "{error}");
        let error = decode_command::<Shapes>("Rename", b"[1,", true).unwrap_err();
        assert!(error.contains("data is not JSON"), "{error}");
    }

    #[derive(Serialize)]
    enum Renamed {
        #[serde(rename = "we\"ird:{name}")]
        Weird { text: String },
    }

    #[derive(Serialize)]
    struct TwoFields {
        a: i64,
        b: i64,
    }

    #[test]
    fn struct_variant_splits_into_name_and_fields() {
        let named = to_named(&Sample::Fields { amount: 5 }).unwrap();
        assert_eq!(named, ("Fields".to_owned(), br#"{"amount":5}"#.to_vec()));
        let named = to_named(&Sample::Optional {
            note: Some("}:{\"".into()),
        })
        .unwrap();
        assert_eq!(named.0, "Optional");
        assert_eq!(
            serde_json::from_slice::<Value>(&named.1).unwrap(),
            json!({"note": "}:{\""})
        );
    }

    #[test]
    fn a_name_with_json_syntax_in_it_splits_correctly() {
        let (name, data) = to_named(&Renamed::Weird { text: "x".into() }).unwrap();
        assert_eq!(name, "we\"ird:{name}");
        assert_eq!(data, br#"{"text":"x"}"#.to_vec());
    }

    #[derive(Serialize)]
    struct Wrapper(Sample);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Flattened {
        Tagged {
            id: i64,
            #[serde(flatten)]
            extra: std::collections::BTreeMap<String, i64>,
        },
    }

    #[test]
    fn a_variant_with_flattened_fields_round_trips() {
        let value = Flattened::Tagged {
            id: 1,
            extra: [("b".to_owned(), 2)].into(),
        };
        let (name, data) = to_named(&value).unwrap();
        assert_eq!(name, "Tagged");
        assert_eq!(
            serde_json::from_slice::<Value>(&data).unwrap(),
            json!({"id": 1, "b": 2})
        );
        assert_eq!(decode_named::<Flattened>(&name, &data).unwrap(), value);
        assert_eq!(
            decode_command::<Flattened>(&name, &data, true).unwrap(),
            value
        );
    }

    #[test]
    fn a_newtype_struct_around_a_variant_is_the_variant() {
        let named = to_named(&Wrapper(Sample::Fields { amount: 5 })).unwrap();
        assert_eq!(named, ("Fields".to_owned(), br#"{"amount":5}"#.to_vec()));
    }

    #[test]
    fn unit_variant_carries_an_empty_object() {
        assert_eq!(
            to_named(&Sample::Unit).unwrap(),
            ("Unit".to_owned(), b"{}".to_vec())
        );
    }

    #[test]
    fn a_map_of_more_than_one_entry_is_not_a_variant() {
        let error = to_named(&TwoFields { a: 1, b: 2 }).unwrap_err();
        assert!(error.contains("expected an enum variant"), "{error}");
    }

    #[test]
    fn commands_must_carry_their_fields_as_an_object() {
        assert_eq!(
            decode_command::<Sample>("Fields", br#" {"amount": 5} "#, true).unwrap(),
            Sample::Fields { amount: 5 }
        );
        assert_eq!(
            decode_command::<Sample>("Unit", b"", true).unwrap(),
            Sample::Unit
        );
        assert_eq!(
            decode_command::<Sample>("Unit", b"null", true).unwrap(),
            Sample::Unit
        );
        assert_eq!(
            decode_command::<Sample>("Unit", b"{}", true).unwrap(),
            Sample::Unit
        );
        // serde's stream deserializer would take the fields as an array: commands don't.
        assert_eq!(
            decode_named::<Sample>("Fields", b"[5]").unwrap(),
            Sample::Fields { amount: 5 }
        );
        let error = decode_command::<Sample>("Fields", b"[5]", true).unwrap_err();
        assert!(error.contains("as a JSON object, got an array"), "{error}");
        let error = decode_command::<Sample>("Fields", b"5", true).unwrap_err();
        assert!(error.contains("as a JSON object, got a number"), "{error}");
        let error = decode_command::<Sample>("Fields", b"[5", true).unwrap_err();
        assert!(error.contains("data is not JSON"), "{error}");
        let error =
            decode_command::<Sample>("Fields", br#"{"amount":1,"amount":2}"#, true).unwrap_err();
        assert!(error.contains("duplicate field"), "{error}");
        let error = decode_command::<Sample>("Fields", br#"nonsense"#, true).unwrap_err();
        assert!(error.contains("data is not JSON"), "{error}");
    }

    #[test]
    fn a_non_enum_value_is_an_error() {
        assert!(
            to_named(&5)
                .unwrap_err()
                .contains("expected an enum variant")
        );
    }

    #[test]
    fn unit_variant_accepts_empty_object_null_and_no_bytes() {
        assert_eq!(decode_named::<Sample>("Unit", b"{}").unwrap(), Sample::Unit);
        assert_eq!(
            decode_named::<Sample>("Unit", b"null").unwrap(),
            Sample::Unit
        );
        assert_eq!(decode_named::<Sample>("Unit", b"").unwrap(), Sample::Unit);
    }

    #[test]
    fn struct_variant_round_trips() {
        let (name, data) = to_named(&Sample::Optional {
            note: Some("hi".into()),
        })
        .unwrap();
        assert_eq!(
            decode_named::<Sample>(&name, &data).unwrap(),
            Sample::Optional {
                note: Some("hi".into())
            }
        );
    }

    #[test]
    fn unknown_name_is_an_error_listing_the_known_ones() {
        let error = decode_named::<Sample>("Nope", b"{}").unwrap_err();
        assert!(error.contains("unknown variant `Nope`"), "{error}");
        assert!(error.contains("Fields"), "{error}");
    }

    #[test]
    fn wrong_field_type_is_an_error_naming_the_problem() {
        let error = decode_named::<Sample>("Fields", br#"{"amount": "five"}"#).unwrap_err();
        assert!(error.contains("invalid type"), "{error}");
        let error = decode_command::<Sample>("Fields", br#"{"amount": "five"}"#, true).unwrap_err();
        assert!(error.contains("invalid type"), "{error}");
    }

    #[test]
    fn missing_field_is_an_error_naming_the_field() {
        let error = decode_named::<Sample>("Fields", b"{}").unwrap_err();
        assert!(error.contains("missing field `amount`"), "{error}");
    }

    #[test]
    fn data_that_is_not_json_is_an_error() {
        assert!(
            parse_data(b"{amount:")
                .unwrap_err()
                .starts_with("data is not JSON")
        );
        let error = decode_named::<Sample>("Fields", b"{amount:").unwrap_err();
        assert!(error.contains("data is not JSON"), "{error}");
        // Data that would smuggle a second variant into the spliced document.
        let smuggled = br#"{"amount":1},"Unit":null"#;
        assert!(decode_named::<Sample>("Fields", smuggled).is_err());
    }
}

//! Mapping between serde enums and the wire shape `name` + JSON `data`.
//!
//! A variant `Deposit { amount: 5 }` travels as name `Deposit`, data `{"amount":5}`;
//! a unit variant `CloseAccount` travels with data `{}` (`null` and empty bytes are
//! accepted on input). This is serde's externally tagged enum encoding, taken apart:
//! authors derive `Serialize`/`Deserialize` with no attributes.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Splits an enum value into its variant name and its data.
pub(crate) fn to_named<T: Serialize>(value: &T) -> Result<(String, Value), String> {
    match serde_json::to_value(value).map_err(|error| error.to_string())? {
        Value::String(name) => Ok((name, Value::Object(Map::new()))),
        Value::Object(map) if map.len() == 1 => Ok(map.into_iter().next().expect("one entry")),
        other => Err(format!(
            "expected an enum variant, got the JSON value {other}"
        )),
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
/// `null`), in one parse with no intermediate JSON tree: this is the inner loop of a
/// fold, used for events (which the plugin's own serializer wrote). Unit variants
/// accept `null` and `{}`. Less strict than [`from_named`] in one way: serde's
/// stream deserializer also takes a struct variant's fields as an array, which is
/// why client input (commands) goes through [`from_named`].
pub(crate) fn decode_named<T: DeserializeOwned>(name: &str, data: &[u8]) -> Result<T, String> {
    let data = match data.trim_ascii() {
        b"" => b"null".as_slice(),
        data => data,
    };
    // Check that the data is one JSON value before splicing it into a document.
    serde_json::from_slice::<serde::de::IgnoredAny>(data)
        .map_err(|error| format!("data is not JSON: {error}"))?;
    let name_json = serde_json::to_string(name).map_err(|error| error.to_string())?;
    let mut tagged = Vec::with_capacity(name_json.len() + data.len() + 3);
    tagged.push(b'{');
    tagged.extend_from_slice(name_json.as_bytes());
    tagged.push(b':');
    tagged.extend_from_slice(data);
    tagged.push(b'}');
    match serde_json::from_slice(&tagged) {
        Ok(value) => Ok(value),
        Err(error) => {
            let no_data =
                data == b"null" || (data.starts_with(b"{") && data[1..].trim_ascii() == b"}");
            // A unit variant is the bare string `"Name"` in serde's encoding.
            if no_data && let Ok(value) = serde_json::from_str(&name_json) {
                return Ok(value);
            }
            Err(error.to_string())
        }
    }
}

/// Builds the enum value named `name` from its data: strict (a struct variant's
/// fields must be an object), for client input.
pub(crate) fn from_named<T: DeserializeOwned>(name: &str, data: Value) -> Result<T, String> {
    let no_data = match &data {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        _ => false,
    };
    let tagged = Value::Object(Map::from_iter([(name.to_owned(), data)]));
    match serde_json::from_value(tagged) {
        Ok(value) => Ok(value),
        Err(error) => {
            // A unit variant is the bare string `"Name"` in serde's encoding.
            if no_data && let Ok(value) = serde_json::from_value(Value::String(name.to_owned())) {
                return Ok(value);
            }
            Err(error.to_string())
        }
    }
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

    #[test]
    fn struct_variant_splits_into_name_and_fields() {
        let named = to_named(&Sample::Fields { amount: 5 }).unwrap();
        assert_eq!(named, ("Fields".to_owned(), json!({"amount": 5})));
    }

    #[test]
    fn unit_variant_carries_an_empty_object() {
        assert_eq!(
            to_named(&Sample::Unit).unwrap(),
            ("Unit".to_owned(), json!({}))
        );
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
            decode_named::<Sample>(&name, data.to_string().as_bytes()).unwrap(),
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
        let error = from_named::<Sample>("Fields", json!({"amount": "five"})).unwrap_err();
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
        assert!(error.starts_with("data is not JSON"), "{error}");
        // Data that would smuggle a second variant into the spliced document.
        let smuggled = br#"{"amount":1},"Unit":null"#;
        assert!(decode_named::<Sample>("Fields", smuggled).is_err());
    }
}

//! A serde deserializer that builds an enum value from a variant name and the JSON
//! of its data, parsing the data once, in place.

use serde::de::value::StrDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer as _, EnumAccess, VariantAccess, Visitor};
use serde::forward_to_deserialize_any;

type Error = serde_json::Error;

/// An enum value on the wire: the variant `name`, and its `data` as JSON text
/// (trimmed; empty means `null`).
///
/// A unit variant takes no data, `null` or `{}`. With `strict`, a struct variant takes
/// its fields only as a JSON object (as clients must send them); otherwise also as an
/// array, as serde_json's struct deserialization does.
pub(crate) struct NamedVariant<'de> {
    pub name: &'de str,
    pub data: &'de [u8],
    pub strict: bool,
}

impl<'de> de::Deserializer<'de> for NamedVariant<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_enum(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
        struct identifier ignored_any
    }
}

impl<'de> EnumAccess<'de> for NamedVariant<'de> {
    type Error = Error;
    type Variant = VariantData<'de>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, VariantData<'de>), Error> {
        let variant = seed.deserialize(StrDeserializer::<Error>::new(self.name))?;
        Ok((
            variant,
            VariantData {
                data: self.data,
                strict: self.strict,
            },
        ))
    }
}

/// The data of the variant [`NamedVariant`] names.
pub(crate) struct VariantData<'de> {
    data: &'de [u8],
    strict: bool,
}

impl<'de> VariantData<'de> {
    /// Parses the data with `parse`, which must consume all of it.
    fn parse<T>(
        self,
        parse: impl FnOnce(
            &mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>,
        ) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let json = if self.data.is_empty() {
            b"null".as_slice()
        } else {
            self.data
        };
        let mut deserializer = serde_json::Deserializer::from_slice(json);
        let value = parse(&mut deserializer)?;
        deserializer.end()?;
        Ok(value)
    }
}

impl<'de> VariantAccess<'de> for VariantData<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        let data = self.data;
        let empty_object = data.starts_with(b"{") && data[1..].trim_ascii() == b"}";
        if data.is_empty() || data == b"null" || empty_object {
            return Ok(());
        }
        Err(de::Error::custom(format!(
            "takes no data (no data, null or {{}}), got {}",
            json_kind(data)
        )))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        self.parse(|json| seed.deserialize(json))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.parse(|json| json.deserialize_tuple(len, visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let strict = self.strict;
        if strict && !self.data.starts_with(b"{") {
            // Said here in the client's terms rather than serde's ("expected struct
            // variant Command::Deposit"), which name Rust types.
            return Err(de::Error::custom(format!(
                "takes its fields as a JSON object, got {}",
                json_kind(self.data)
            )));
        }
        self.parse(|json| {
            if strict {
                json.deserialize_map(visitor)
            } else {
                json.deserialize_struct("", fields, visitor)
            }
        })
    }
}

/// What kind of JSON value `data` (trimmed) starts, for a message: "an array", "null".
fn json_kind(data: &[u8]) -> &'static str {
    match data.first() {
        None => "no data",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        Some(_) => "a number",
    }
}

//! Reading the variant names of a serde enum, so that `describe` lists every
//! command and event without the author repeating them; and the field names of one
//! variant, so that a command with an unknown field is refused naming the fields it
//! has.
//!
//! A derived `Deserialize` for an enum calls `Deserializer::deserialize_enum` with
//! the static list of its variant names (after any `#[serde(rename)]`), and a struct
//! variant's `VariantAccess::struct_variant` (or a struct's `deserialize_struct`)
//! with the static list of its field names. A deserializer that records a list and
//! then stops is all it takes.

use std::cell::Cell;

use serde::de::value::StrDeserializer;
use serde::de::{self, Deserialize, DeserializeSeed, EnumAccess, VariantAccess, Visitor};

/// The wire names of the variants of enum `T`, in declaration order.
///
/// # Panics
/// If `T`'s `Deserialize` is not an enum's (a plugin bug caught by its first test).
pub(crate) fn variant_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut probe = VariantProbe { names: None };
    // The probe always stops the deserialization with an error; only the names count.
    let _ = T::deserialize(&mut probe);
    probe.names.unwrap_or_else(|| {
        panic!(
            "{} is not an enum deriving serde::Deserialize",
            std::any::type_name::<T>()
        )
    })
}

/// The wire names of the fields of variant `variant` of enum `T`: a struct variant's,
/// or those of the struct a newtype variant holds; none for a unit variant. `None`
/// when `T` has no such variant or its data has no named fields (a tuple, a number).
pub(crate) fn variant_fields<'de, T: Deserialize<'de>>(
    variant: &str,
) -> Option<&'static [&'static str]> {
    let found = Cell::new(None);
    // The probe always stops the deserialization with an error; only the names count.
    let _ = T::deserialize(FieldProbe {
        variant,
        found: &found,
    });
    found.get()
}

/// A deserializer that only records the variant list of the enum asked of it.
struct VariantProbe {
    names: Option<&'static [&'static str]>,
}

/// The error that ends every probe.
#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("variant probe stops here")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        Stop
    }
}

impl<'de> de::Deserializer<'de> for &mut VariantProbe {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        self.names = Some(variants);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

/// A deserializer that walks into one variant of the enum asked of it and records its
/// field names.
struct FieldProbe<'a> {
    variant: &'a str,
    found: &'a Cell<Option<&'static [&'static str]>>,
}

impl<'de> de::Deserializer<'de> for FieldProbe<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

impl<'de> EnumAccess<'de> for FieldProbe<'_> {
    type Error = Stop;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Stop> {
        let variant = seed.deserialize(StrDeserializer::<Stop>::new(self.variant))?;
        Ok((variant, self))
    }
}

impl<'de> VariantAccess<'de> for FieldProbe<'_> {
    type Error = Stop;

    fn unit_variant(self) -> Result<(), Stop> {
        self.found.set(Some(&[]));
        Err(Stop)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Stop> {
        seed.deserialize(StructProbe { found: self.found })
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        self.found.set(Some(fields));
        Err(Stop)
    }
}

/// A deserializer that records the field names of the struct asked of it.
struct StructProbe<'a> {
    found: &'a Cell<Option<&'static [&'static str]>>,
}

impl<'de> de::Deserializer<'de> for StructProbe<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        self.found.set(Some(fields));
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[allow(dead_code)] // only the variant names are read
    enum Sample {
        First,
        #[serde(rename = "Renamed")]
        Second {
            amount: i64,
        },
        Third(String),
    }

    #[test]
    fn lists_variants_in_declaration_order_with_renames() {
        assert_eq!(variant_names::<Sample>(), ["First", "Renamed", "Third"]);
    }

    #[derive(Deserialize)]
    #[allow(dead_code)] // only the field names are read
    struct Transfer {
        to: String,
        #[serde(rename = "sum")]
        amount: i64,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)] // only the field names are read
    enum Commands {
        Open,
        Deposit { amount: i64, memo: Option<String> },
        Transfer(Transfer),
        Move(i64, i64),
        Note(String),
    }

    #[test]
    fn lists_the_fields_of_a_variant_with_renames() {
        assert_eq!(
            variant_fields::<Commands>("Deposit"),
            Some(&["amount", "memo"][..])
        );
        assert_eq!(
            variant_fields::<Commands>("Transfer"),
            Some(&["to", "sum"][..])
        );
        assert_eq!(variant_fields::<Commands>("Open"), Some(&[][..]));
    }

    #[test]
    fn a_variant_without_named_fields_or_an_unknown_one_has_no_list() {
        assert_eq!(variant_fields::<Commands>("Move"), None);
        assert_eq!(variant_fields::<Commands>("Note"), None);
        assert_eq!(variant_fields::<Commands>("Withdraw"), None);
    }

    #[test]
    #[should_panic(expected = "is not an enum")]
    fn a_struct_is_a_plugin_bug() {
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct NotAnEnum {
            amount: i64,
        }
        variant_names::<NotAnEnum>();
    }
}

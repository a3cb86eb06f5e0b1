//! Reading the variant names of a serde enum, so that `describe` lists every
//! command and event without the author repeating them.
//!
//! A derived `Deserialize` for an enum calls `Deserializer::deserialize_enum` with
//! the static list of its variant names (after any `#[serde(rename)]`). A
//! deserializer that records that list and then stops is all it takes.

use serde::de::{self, Deserialize, Visitor};

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

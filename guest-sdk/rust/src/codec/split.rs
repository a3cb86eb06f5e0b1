//! A serde serializer that takes an enum value apart into its variant name and the
//! JSON of its data, writing the data once, straight into its buffer.

use serde::Serialize;
use serde::ser::{
    self, Impossible, SerializeStruct, SerializeStructVariant, SerializeTuple,
    SerializeTupleVariant,
};
use serde_json::ser::Compound;

/// The error of a value that is not an enum variant.
pub(crate) const NOT_A_VARIANT: &str = "expected an enum variant";

type Json = serde_json::Serializer<Vec<u8>>;
type Error = serde_json::Error;

/// Serializes an enum value: records the variant name in `variant` and writes the
/// variant's data as JSON to `json` (`{}` for a unit variant). Anything but an enum
/// variant (or a newtype struct around one) fails with [`NOT_A_VARIANT`].
pub(crate) struct VariantSplitter<'a> {
    pub variant: &'a mut Option<&'static str>,
    pub json: &'a mut Json,
}

/// The fields of a struct variant, written as a JSON object.
pub(crate) struct StructData<'a>(Compound<'a, Vec<u8>, serde_json::ser::CompactFormatter>);

/// The elements of a tuple variant, written as a JSON array.
pub(crate) struct TupleData<'a>(Compound<'a, Vec<u8>, serde_json::ser::CompactFormatter>);

fn not_a_variant<T>() -> Result<T, Error> {
    Err(ser::Error::custom(NOT_A_VARIANT))
}

impl<'a> ser::Serializer for VariantSplitter<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = TupleData<'a>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = StructData<'a>;

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        *self.variant = Some(variant);
        // `{}`: an empty object.
        ser::SerializeMap::end(ser::Serializer::serialize_map(self.json, Some(0))?)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        *self.variant = Some(variant);
        value.serialize(self.json)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<TupleData<'a>, Error> {
        *self.variant = Some(variant);
        ser::Serializer::serialize_tuple(self.json, len).map(TupleData)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<StructData<'a>, Error> {
        *self.variant = Some(variant);
        ser::Serializer::serialize_struct(self.json, variant, len).map(StructData)
    }

    /// A newtype struct is transparent, as in serde_json: `Wrapper(Event::X)` is `X`.
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_bool(self, _: bool) -> Result<(), Error> {
        not_a_variant()
    }
    fn serialize_i8(self, _: i8) -> Result<(), Error> {
        not_a_variant()
    }
    fn serialize_i16(self, _: i16) -> Result<(), Error> {
        not_a_variant()
    }
    fn serialize_i32(self, _: i32) -> Result<(), Error> {
        not_a_variant()
    }
    fn serialize_i64(self, _: i64) -> Result<(), Error> {
        not_a_variant()
    }
    fn serialize_u8(self, _: u8) -> Result<(), Error> {
        not_a_variant()
    }
    fn serialize_u16(self, _: u16) -> Result<(), Error> {
        not_a_variant()
    }
    fn serialize_u32(self, _: u32) -> Result<(), Error> {
        not_a_variant()
    }
    fn serialize_u64(self, _: u64) -> Result<(), Error> {
        not_a_variant()
    }
    fn serialize_f32(self, _: f32) -> Result<(), Error> {
        not_a_variant()
    }
    fn serialize_f64(self, _: f64) -> Result<(), Error> {
        not_a_variant()
    }
    fn serialize_char(self, _: char) -> Result<(), Error> {
        not_a_variant()
    }
    fn serialize_str(self, _: &str) -> Result<(), Error> {
        not_a_variant()
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Error> {
        not_a_variant()
    }
    fn serialize_none(self) -> Result<(), Error> {
        not_a_variant()
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), Error> {
        not_a_variant()
    }
    fn serialize_unit(self) -> Result<(), Error> {
        not_a_variant()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        not_a_variant()
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        not_a_variant()
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        not_a_variant()
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        not_a_variant()
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        not_a_variant()
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        not_a_variant()
    }
}

impl SerializeTupleVariant for TupleData<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        SerializeTuple::serialize_element(&mut self.0, value)
    }

    fn end(self) -> Result<(), Error> {
        SerializeTuple::end(self.0)
    }
}

impl SerializeStructVariant for StructData<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        SerializeStruct::serialize_field(&mut self.0, key, value)
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), Error> {
        SerializeStruct::skip_field(&mut self.0, key)
    }

    fn end(self) -> Result<(), Error> {
        SerializeStruct::end(self.0)
    }
}

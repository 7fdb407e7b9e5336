//! Plugin answers decoded the way dockerd's Go decoder reads them, so that a plugin that works
//! with dockerd works with berth: the first JSON value of the body counts (what follows it is
//! not read), object keys match struct fields case-insensitively (an exact match first), a
//! `null` leaves a field at its zero value, and unknown keys are ignored. A value of the wrong
//! type is an error, as in Go.

use serde::Deserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde_json::{Map, Value};

/// Decodes the first JSON value of `bytes` into `T` with Go's rules (see the module).
pub(crate) fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<Value>();
    match values.next() {
        Some(value) => T::deserialize(GoValue(value?)),
        None => Err(de::Error::custom(
            "the answer has no JSON value (empty body)",
        )),
    }
}

/// A JSON value that deserializes with Go's rules.
struct GoValue(Value);

/// Zero of a scalar for `null`, else the value's own deserializer.
macro_rules! scalar {
    ($($method:ident => $visit:ident($zero:expr)),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                match self.0 {
                    Value::Null => visitor.$visit($zero),
                    other => other.$method(visitor),
                }
            }
        )*
    };
}

impl<'de> Deserializer<'de> for GoValue {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Array(items) => visitor.visit_seq(Seq(items.into_iter())),
            Value::Object(map) => visitor.visit_map(Entries::new(map)),
            other => other.deserialize_any(visitor),
        }
    }

    scalar! {
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i64(0),
        deserialize_i16 => visit_i64(0),
        deserialize_i32 => visit_i64(0),
        deserialize_i64 => visit_i64(0),
        deserialize_u8 => visit_u64(0),
        deserialize_u16 => visit_u64(0),
        deserialize_u32 => visit_u64(0),
        deserialize_u64 => visit_u64(0),
        deserialize_f32 => visit_f64(0.0),
        deserialize_f64 => visit_f64(0.0),
        deserialize_str => visit_str(""),
        deserialize_string => visit_str(""),
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(GoValue(other)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_seq(Seq(Vec::new().into_iter())),
            Value::Array(items) => visitor.visit_seq(Seq(items.into_iter())),
            other => other.deserialize_seq(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_map(Entries::new(Map::new())),
            Value::Object(map) => visitor.visit_map(Entries::new(map)),
            other => other.deserialize_map(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_map(Entries::new(Map::new())),
            Value::Object(map) => visitor.visit_map(Entries::new(go_fields(map, fields))),
            other => other.deserialize_struct(name, fields, visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        char bytes byte_buf unit unit_struct enum identifier
    }
}

/// An object's entries keyed by the struct's field names as Go matches them: a key that is a
/// field's name exactly, else the first field it equals ignoring ASCII case; a later key wins
/// over an earlier one for the same field; a `null` changes nothing.
fn go_fields(map: Map<String, Value>, fields: &[&str]) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in map {
        if value.is_null() {
            continue;
        }
        let field = fields
            .iter()
            .find(|f| **f == key)
            .or_else(|| fields.iter().find(|f| f.eq_ignore_ascii_case(&key)));
        // Unknown keys are dropped here, as Go ignores them.
        if let Some(f) = field {
            out.insert((*f).to_owned(), value);
        }
    }
    out
}

struct Seq(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for Seq {
    type Error = serde_json::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.0
            .next()
            .map(|v| seed.deserialize(GoValue(v)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Entries {
    entries: serde_json::map::IntoIter,
    value: Option<Value>,
}

impl Entries {
    fn new(map: Map<String, Value>) -> Entries {
        Entries {
            entries: map.into_iter(),
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for Entries {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                let key: de::value::StringDeserializer<serde_json::Error> = key.into_deserializer();
                seed.deserialize(key).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| <serde_json::Error as de::Error>::custom("a value without its key"))?;
        seed.deserialize(GoValue(value))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, rename_all = "PascalCase")]
    struct Answer {
        err: String,
        implements: Vec<String>,
        count: u16,
        flag: bool,
        inner: Option<Inner>,
        data: BTreeMap<String, String>,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, rename_all = "PascalCase")]
    struct Inner {
        src_name: String,
    }

    #[test]
    fn reads_like_go() {
        // Keys in any case, unknown keys ignored, trailing bytes not read.
        let a: Answer = from_slice(
            br#"{"err":"boom","IMPLEMENTS":["NetworkDriver"],"extra":1,"inner":{"srcname":"x"}} trailing"#,
        )
        .unwrap();
        assert_eq!(a.err, "boom");
        assert_eq!(a.implements, ["NetworkDriver"]);
        assert_eq!(a.inner.unwrap().src_name, "x");
        // null is the zero value, everywhere.
        let a: Answer = from_slice(
            br#"{"Err":null,"Implements":null,"Count":null,"Flag":null,"Inner":null,"Data":null}"#,
        )
        .unwrap();
        assert_eq!(a, Answer::default());
        assert_eq!(from_slice::<Answer>(b" null ").unwrap(), Answer::default());
        // A later key wins; an exact match is preferred, a null changes nothing.
        let a: Answer = from_slice(br#"{"Err":"a","err":"b","ERR":null}"#).unwrap();
        assert_eq!(a.err, "b");
        // Wrong types and empty bodies are errors.
        for bad in [
            &br#"{"Count":"1"}"#[..],
            br#"{"Count":70000}"#,
            b"",
            b"  ",
            b"[1]",
            b"{",
        ] {
            assert!(from_slice::<Answer>(bad).is_err(), "{bad:?}");
        }
        // Free-form values keep their shape.
        let v: BTreeMap<String, Value> = from_slice(br#"{"a":{"b":[1,null,"c"]}}"#).unwrap();
        assert_eq!(v["a"]["b"][2], "c");
    }
}

//! Partial configs laid over a preset: a DAG names a preset and writes only the thresholds it
//! changes. The JSON Schema is the full type's (so every field is checked, with its position,
//! before anything runs); the value keeps only what was written, so a config's cache key says
//! what the author chose, and the preset's values come from the code (whose fingerprint is in
//! the key as well).

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::marker::PhantomData;

/// The fields of a `T` written in a DAG, to be applied over a base `T` with
/// [`Overrides::apply`].
#[derive(Debug)]
pub struct Overrides<T> {
    fields: serde_json::Map<String, serde_json::Value>,
    _of: PhantomData<fn() -> T>,
}

impl<T> Clone for Overrides<T> {
    fn clone(&self) -> Self {
        Overrides {
            fields: self.fields.clone(),
            _of: PhantomData,
        }
    }
}

impl<T> Default for Overrides<T> {
    fn default() -> Self {
        Overrides {
            fields: serde_json::Map::new(),
            _of: PhantomData,
        }
    }
}

impl<T> PartialEq for Overrides<T> {
    fn eq(&self, other: &Self) -> bool {
        self.fields == other.fields
    }
}

impl<T: Serialize + DeserializeOwned> Overrides<T> {
    /// `base` with the written fields replaced (a written `null` turns an optional rule off;
    /// a written list replaces the whole list).
    pub fn apply(&self, base: T) -> Result<T, String> {
        if self.fields.is_empty() {
            return Ok(base);
        }
        let mut v = serde_json::to_value(base).map_err(|e| e.to_string())?;
        let obj = v
            .as_object_mut()
            .ok_or_else(|| "overrides apply to a map".to_string())?;
        for (k, x) in &self.fields {
            obj.insert(k.clone(), x.clone());
        }
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    /// Whether no field was written.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl<T> Serialize for Overrides<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.fields.serialize(s)
    }
}

impl<'de, T: DeserializeOwned + Serialize + Default> Deserialize<'de> for Overrides<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let fields = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let o = Overrides {
            fields,
            _of: PhantomData,
        };
        // Unknown fields and wrong types are errors now, not when the preset is applied.
        o.apply(T::default()).map_err(serde::de::Error::custom)?;
        Ok(o)
    }
}

impl<T: JsonSchema> JsonSchema for Overrides<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }

    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields, default)]
    struct T {
        a: Option<u32>,
        b: Vec<u32>,
    }
    impl Default for T {
        fn default() -> Self {
            T {
                a: Some(1),
                b: vec![1, 2],
            }
        }
    }

    #[test]
    fn written_fields_replace_the_base_and_nothing_else() {
        let base = T {
            a: Some(7),
            b: vec![9],
        };
        let o: Overrides<T> = serde_json::from_str(r#"{"b": []}"#).unwrap();
        assert_eq!(
            o.apply(base.clone()).unwrap(),
            T {
                a: Some(7),
                b: vec![]
            }
        );
        let o: Overrides<T> = serde_json::from_str(r#"{"a": null}"#).unwrap();
        assert_eq!(o.apply(base.clone()).unwrap().a, None);
        assert_eq!(serde_json::to_string(&o).unwrap(), r#"{"a":null}"#);
        assert!(serde_json::from_str::<Overrides<T>>(r#"{"c": 1}"#).is_err());
        assert!(serde_json::from_str::<Overrides<T>>(r#"{"a": "x"}"#).is_err());
        let o = Overrides::<T>::default();
        assert!(o.is_empty());
        assert_eq!(o.apply(base.clone()).unwrap(), base);
    }
}

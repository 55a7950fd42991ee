//! `usage_object!`: a usage struct read from a JSON object the way a provider's client reads
//! it: every field optional, unknown keys skipped, and a key that comes twice keeps its last
//! value.
//!
//! serde's derive refuses a repeated key ("duplicate field"), which would lose the whole
//! usage object of an answer that repeats one; JSON readers in JavaScript and Python keep
//! the last value, and providers' answers have carried such objects. The generated
//! `Deserialize` is also smaller than the derive's (no sequence form, no field enum), which
//! matters in the `.wasm`.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// An object key, borrowed from the input when it has no escapes.
pub(super) struct Key<'de>(pub(super) Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// What a usage object visitor expects (one function for all of them: the `.wasm` keeps one).
pub(super) fn expecting(f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("a usage object")
}

/// Declares a `Default` struct whose `Deserialize` reads a JSON object: each `"key" =>
/// field: Type` sets its field (the last occurrence wins); other keys are skipped.
macro_rules! usage_object {
    ($(#[$meta:meta])* struct $name:ident { $($key:literal => $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Default)]
        struct $name {
            $($field: $ty,)*
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                struct ObjectVisitor;
                impl<'de> serde::de::Visitor<'de> for ObjectVisitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        $crate::usage::object::expecting(f)
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$name, A::Error> {
                        let mut out = $name::default();
                        while let Some(key) = map.next_key::<$crate::usage::object::Key<'de>>()? {
                            match key.0.as_ref() {
                                $($key => out.$field = map.next_value()?,)*
                                _ => {
                                    map.next_value::<serde::de::IgnoredAny>()?;
                                }
                            }
                        }
                        Ok(out)
                    }
                }
                deserializer.deserialize_map(ObjectVisitor)
            }
        }
    };
}

pub(super) use usage_object;

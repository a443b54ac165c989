//! Where a node of a JSON or YAML text is: its line and column, found by
//! reading the text again and stopping at the node with a marker error that
//! the parser stamps with its position (neither parser keeps positions
//! otherwise). Shared by the import (a spec's errors, by JSON pointer) and
//! the server's configuration files (by their own node paths). A leaf: it
//! imports nothing of this crate.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step into a document. A JSON-pointer segment can be either a key or
/// an index; the node it meets decides which it is.
pub trait Segment {
    /// The key this step takes in a mapping, if it can take one.
    fn key(&self) -> Option<&str>;
    /// The index this step takes in a sequence, if it can take one.
    fn index(&self) -> Option<usize>;
}

impl Segment for String {
    fn key(&self) -> Option<&str> {
        Some(self)
    }

    fn index(&self) -> Option<usize> {
        self.parse().ok()
    }
}

/// The line and column (both from 1) of the node at `path` of a YAML text,
/// or of the place its deepest existing ancestor ends.
pub fn yaml<S: Segment>(text: &str, path: &[S]) -> Option<(usize, usize)> {
    let err = Seek(path).deserialize(yaml_serde::Deserializer::from_str(text)).err()?;
    if !err.to_string().contains(FOUND) {
        return None;
    }
    err.location().map(|l| (l.line(), l.column()))
}

/// The line and column (both from 1) of the node at `path` of a JSON text,
/// as [`yaml`] finds them.
pub fn json<S: Segment>(text: &str, path: &[S]) -> Option<(usize, usize)> {
    let mut de = serde_json::Deserializer::from_str(text);
    let err = Seek(path).deserialize(&mut de).err()?;
    (err.to_string().contains(FOUND) && err.line() > 0).then(|| (err.line(), err.column()))
}

const FOUND: &str = "\u{1}located\u{1}";

struct Seek<'p, S>(&'p [S]);

impl<'de, S: Segment> DeserializeSeed<'de> for Seek<'_, S> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, S: Segment> Visitor<'de> for Seek<'_, S> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.0.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        let wanted = first.index();
        let mut i = 0;
        loop {
            if Some(i) == wanted {
                // The element's own marker error, or the sequence's end if it is missing.
                seq.next_element_seed(Seek(rest))?;
                break;
            }
            if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            i += 1;
        }
        Err(de::Error::custom(FOUND))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.0.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        let wanted = first.key();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if Some(key.as_str()) == wanted {
                map.next_value_seed(Seek(rest))?;
                break;
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(de::Error::custom(FOUND))
    }
}

/// Mapping keys as text; YAML keys such as `200` stay as written.
pub(crate) struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Vec<String> {
        p.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }

    const YAML: &str = "a:\n  - x: 1\n  - x: 2\n    y: [true, false]\n200:\n  ok: yes\n";

    #[test]
    fn finds_yaml_nodes_by_key_and_index() {
        assert_eq!(yaml(YAML, &path("/a/1/x")), Some((3, 8)));
        assert_eq!(yaml(YAML, &path("/a/1/y/1")), Some((4, 15)));
        // A number as a key is found by its text.
        assert_eq!(yaml(YAML, &path("/200/ok")), Some((6, 7)));
    }

    #[test]
    fn stops_where_the_deepest_existing_node_ends() {
        let located = yaml(YAML, &path("/a/1/nothing"));
        assert!(located.is_some_and(|(line, _)| line >= 3), "{located:?}");
        // A missing element: where the sequence is.
        let located = yaml(YAML, &path("/a/7"));
        assert!(located.is_some_and(|(line, _)| line >= 2), "{located:?}");
    }

    #[test]
    fn finds_json_nodes() {
        let text = "{\"a\": [\n  {\"x\": 1},\n  {\"x\": 2}\n]}";
        assert_eq!(json(text, &path("/a/1/x")).map(|p| p.0), Some(3));
        assert_eq!(json("not json", &path("/a")), None);
    }

    #[test]
    fn a_text_that_does_not_read_has_no_position() {
        assert_eq!(yaml("a: [", &path("/a/0")), None);
    }
}

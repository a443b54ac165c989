//! Where a node of the configuration file is: its line and column, found by
//! reading the text again and stopping at the node with a marker error that
//! the YAML parser stamps with its position (the parser keeps no positions
//! otherwise). Used for errors found after parsing: a duplicate name, a
//! refused value, an object the database refuses.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step into the document: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A path into the document, such as `apis[0].plans[1].limits[2].max`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodePath(pub Vec<Step>);

impl NodePath {
    pub fn key(&self, key: &str) -> NodePath {
        let mut steps = self.0.clone();
        steps.push(Step::Key(key.to_owned()));
        NodePath(steps)
    }

    pub fn index(&self, index: usize) -> NodePath {
        let mut steps = self.0.clone();
        steps.push(Step::Index(index));
        NodePath(steps)
    }

    /// Appends a field as core errors name it (`limits[0].max`, `pricing[1]`).
    pub fn field(&self, field: &str) -> NodePath {
        let mut path = self.clone();
        for part in field.split('.').filter(|p| !p.is_empty()) {
            let (name, rest) = part.split_once('[').unwrap_or((part, ""));
            if !name.is_empty() {
                path = path.key(name);
            }
            for index in rest.split('[').map(|i| i.trim_end_matches(']')) {
                if let Ok(i) = index.parse() {
                    path = path.index(i);
                }
            }
        }
        path
    }
}

impl fmt::Display for NodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(k) if i == 0 => write!(f, "{k}")?,
                Step::Key(k) => write!(f, ".{k}")?,
                Step::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// The line and column (both from 1) of the node at `path`, or of its
/// deepest ancestor that exists.
pub fn locate(text: &str, path: &NodePath) -> Option<(usize, usize)> {
    let err = Seek(&path.0).deserialize(yaml_serde::Deserializer::from_str(text)).err()?;
    if !err.to_string().contains(FOUND) {
        return None;
    }
    err.location().map(|l| (l.line(), l.column()))
}

const FOUND: &str = "\u{1}located\u{1}";

struct Seek<'p>(&'p [Step]);

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
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

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Step::Index(wanted), rest)) = self.0.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        let mut index = 0;
        loop {
            if index == *wanted {
                return match seq.next_element_seed(Seek(rest))? {
                    Some(()) => Ok(()),
                    None => Err(de::Error::custom(FOUND)),
                };
            }
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom(FOUND));
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Step::Key(wanted), rest)) = self.0.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        while let Some(key) = map.next_key::<String>()? {
            if &key == wanted {
                return map.next_value_seed(Seek(rest));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(de::Error::custom(FOUND))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "version: 1\napis:\n  - slug: a\n    plans:\n      - system_name: x\n        limits:\n          - {metric: hits, period: day, max: 5}\n";

    #[test]
    fn finds_nested_nodes() {
        let path = NodePath::default().key("apis").index(0).key("plans").index(0).field("limits[0].max");
        assert_eq!(path.to_string(), "apis[0].plans[0].limits[0].max");
        assert_eq!(locate(TEXT, &path), Some((7, 46)));
        assert_eq!(locate(TEXT, &NodePath::default().key("apis").index(0).key("slug")), Some((3, 11)));
    }

    #[test]
    fn stops_at_the_deepest_existing_node() {
        // A missing element reports where its sequence ends; a missing key its mapping.
        let located = locate(TEXT, &NodePath::default().key("apis").index(0).key("nothing"));
        assert!(located.is_some_and(|(line, _)| line >= 3), "{located:?}");
    }
}

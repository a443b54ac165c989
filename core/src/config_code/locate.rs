//! Paths into the configuration file, and where their node is: its line and
//! column, found by the OpenAPI crate's locator (which reads the text again
//! up to the node). Used for errors found after parsing: a duplicate name, a
//! refused value, an object the database refuses.

use std::fmt;

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

impl tollgate_openapi::locate::Segment for Step {
    fn key(&self) -> Option<&str> {
        match self {
            Step::Key(k) => Some(k),
            Step::Index(_) => None,
        }
    }

    fn index(&self) -> Option<usize> {
        match self {
            Step::Key(_) => None,
            Step::Index(i) => Some(*i),
        }
    }
}

/// The line and column (both from 1) of the node at `path`, or of its
/// deepest ancestor that exists.
pub fn locate(text: &str, path: &NodePath) -> Option<(usize, usize)> {
    tollgate_openapi::locate::yaml(text, &path.0)
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

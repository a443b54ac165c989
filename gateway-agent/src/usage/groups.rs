//! Upstream group names as small tags, so usage counters key on a `u32` instead of a string
//! (no allocation or shared reference count on the request path).
//!
//! Names are interned when a config is compiled and kept for the life of the process; an
//! install has a handful of group names, so the table stays tiny.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// An interned group name; [`GroupTag::NONE`] for calls of an API without routing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct GroupTag(u32);

#[derive(Default)]
struct Table {
    names: Vec<Arc<str>>,
    tags: HashMap<Arc<str>, u32>,
}

fn table() -> &'static Mutex<Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE.get_or_init(Mutex::default)
}

impl GroupTag {
    pub const NONE: GroupTag = GroupTag(0);

    pub fn intern(name: &str) -> GroupTag {
        let mut table = table().lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&tag) = table.tags.get(name) {
            return GroupTag(tag);
        }
        let name: Arc<str> = name.into();
        table.names.push(name.clone());
        let tag = table.names.len() as u32;
        table.tags.insert(name, tag);
        GroupTag(tag)
    }

    /// The name, `None` for [`GroupTag::NONE`].
    pub fn name(self) -> Option<Arc<str>> {
        let index = self.0.checked_sub(1)? as usize;
        table().lock().unwrap_or_else(PoisonError::into_inner).names.get(index).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_name_their_group() {
        let canary = GroupTag::intern("canary-test");
        assert_eq!(GroupTag::intern("canary-test"), canary);
        assert_ne!(canary, GroupTag::NONE);
        assert_eq!(canary.name().as_deref(), Some("canary-test"));
        assert_eq!(GroupTag::NONE.name(), None);
    }
}

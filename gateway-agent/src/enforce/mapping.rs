//! Mapping rules: which metrics a request counts on, and by how much.
//!
//! Every matching rule adds its delta to its metric, in order, stopping after a `last` rule
//! (3scale's semantics). Matching borrows the request's method and path and never allocates.

use hyper::Method;
use tollgate_protocol::Pattern;

/// One compiled mapping rule.
pub(crate) struct Rule {
    pub method: Method,
    pub pattern: Pattern,
    /// Index of the metric within its API.
    pub metric: u32,
    pub delta: u32,
    pub last: bool,
}

/// An API's mapping rules, in position order.
pub(crate) struct MappingRules {
    rules: Box<[Rule]>,
}

impl MappingRules {
    pub fn new(rules: Vec<Rule>) -> MappingRules {
        MappingRules { rules: rules.into_boxed_slice() }
    }

    /// Calls `count(metric, delta)` for each rule that counts a request of `method` on `path`
    /// (relative to the API's base path); returns whether any rule matched.
    pub fn apply(&self, method: &Method, path: &str, mut count: impl FnMut(u32, u32)) -> bool {
        let mut matched = false;
        for rule in self.rules.iter() {
            if rule.method != *method || !rule.pattern.matches(path) {
                continue;
            }
            matched = true;
            count(rule.metric, rule.delta);
            if rule.last {
                break;
            }
        }
        matched
    }
}

//! Mapping rules: which metrics a request counts on, and by how much.
//!
//! Imported rules (one per operation of an OpenAPI document) count a call on exactly one
//! operation: of those that match, the most specific ([`Pattern::specificity`]), then the
//! first by position. Hand-made rules keep 3scale's semantics: every match adds its delta.
//! The rules that count are then applied in position order, stopping after a matching rule
//! marked `last`. Matching borrows the request's method and path and never allocates.

use hyper::Method;
use tollgate_protocol::{Pattern, RuleOrigin};

/// One compiled mapping rule.
pub(crate) struct Rule {
    /// `None` for `ANY`.
    pub method: Option<Method>,
    pub pattern: Pattern,
    /// Index of the metric within its API.
    pub metric: u32,
    pub delta: u32,
    pub last: bool,
    pub origin: RuleOrigin,
}

impl Rule {
    fn matches(&self, method: &Method, path: &str) -> bool {
        self.method.as_ref().is_none_or(|m| m == method) && self.pattern.matches(path)
    }
}

/// A set of the standard methods (RFC 9110's and PATCH), for an `Allow` header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Methods(u16);

impl Methods {
    const ORDER: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
        Method::CONNECT,
    ];

    /// Adds `method`; an extension method is left out, as it has no bit.
    fn insert(&mut self, method: &Method) {
        if let Some(bit) = Self::ORDER.iter().position(|m| m == method) {
            self.0 |= 1 << bit;
        }
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// `GET, POST`: the `Allow` header's list.
    pub fn list(self) -> String {
        let names: Vec<&str> = Self::ORDER
            .iter()
            .enumerate()
            .filter(|(bit, _)| self.0 & (1 << bit) != 0)
            .map(|(_, m)| m.as_str())
            .collect();
        names.join(", ")
    }
}

/// An API's mapping rules, in position order.
pub(crate) struct MappingRules {
    rules: Box<[Rule]>,
    /// Indices of the imported rules, most specific first, then by position.
    imported: Box<[usize]>,
    /// Each rule's rank among all rules, most specific first, then by position: the rule
    /// with the lowest rank among those that count names the request's operation.
    rank: Box<[u32]>,
}

impl MappingRules {
    /// `rules` in position order.
    pub fn new(rules: Vec<Rule>) -> MappingRules {
        let by_specificity = |indices: &mut Vec<usize>| {
            // Stable: equally specific rules keep their position order.
            indices.sort_by_cached_key(|&i| std::cmp::Reverse(rules[i].pattern.specificity()));
        };
        let mut imported: Vec<usize> = (0..rules.len()).filter(|&i| rules[i].origin == RuleOrigin::Import).collect();
        by_specificity(&mut imported);
        let mut all: Vec<usize> = (0..rules.len()).collect();
        by_specificity(&mut all);
        let mut rank = vec![0u32; rules.len()];
        for (position, &index) in (0u32..).zip(all.iter()) {
            rank[index] = position;
        }
        MappingRules {
            rules: rules.into_boxed_slice(),
            imported: imported.into_boxed_slice(),
            rank: rank.into_boxed_slice(),
        }
    }

    /// Calls `count(metric, delta)` for each rule that counts a request of `method` on `path`
    /// (relative to the API's base path). Returns the request's operation: the metric of the
    /// most specific rule that counted (the first by position among equals), or `None` if no
    /// rule matched. A `HEAD` no rule counts is counted as a `GET`: it is a `GET` without the
    /// body (RFC 9110, 9.3.2), and OpenAPI documents rarely list it.
    pub fn apply(&self, method: &Method, path: &str, mut count: impl FnMut(u32, u32)) -> Option<u32> {
        let operation = self.apply_as(method, path, &mut count);
        if operation.is_none() && *method == Method::HEAD {
            return self.apply_as(&Method::GET, path, &mut count);
        }
        operation
    }

    fn apply_as(&self, method: &Method, path: &str, count: &mut impl FnMut(u32, u32)) -> Option<u32> {
        let chosen = self.imported.iter().copied().find(|&i| self.rules[i].matches(method, path));
        let mut operation: Option<usize> = None;
        for (index, rule) in self.rules.iter().enumerate() {
            let counts = match rule.origin {
                RuleOrigin::Import => chosen == Some(index),
                RuleOrigin::Manual => rule.matches(method, path),
            };
            if !counts {
                continue;
            }
            if operation.is_none_or(|best| self.rank[index] < self.rank[best]) {
                operation = Some(index);
            }
            count(rule.metric, rule.delta);
            if rule.last {
                break;
            }
        }
        operation.map(|index| self.rules[index].metric)
    }

    /// The methods of the rules whose pattern matches `path` (with `HEAD` wherever `GET` is):
    /// for a request no rule counted, what it could have used instead (a `405`'s `Allow`).
    /// Walks every rule, so only refusals call it.
    pub fn methods_on(&self, path: &str) -> Methods {
        let mut methods = Methods::default();
        for rule in self.rules.iter() {
            if let Some(method) = &rule.method
                && rule.pattern.matches(path)
            {
                methods.insert(method);
                if *method == Method::GET {
                    methods.insert(&Method::HEAD);
                }
            }
        }
        methods
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(method: &str, pattern: &str, metric: u32, origin: RuleOrigin, last: bool) -> Rule {
        Rule {
            method: (method != "ANY").then(|| Method::from_bytes(method.as_bytes()).expect("method")),
            pattern: Pattern::parse(pattern).expect("pattern"),
            metric,
            delta: 1,
            last,
            origin,
        }
    }

    fn counted(rules: &MappingRules, method: Method, path: &str) -> Vec<u32> {
        let mut metrics = Vec::new();
        rules.apply(&method, path, |metric, _| metrics.push(metric));
        metrics
    }

    fn operation(rules: &MappingRules, method: Method, path: &str) -> Option<u32> {
        rules.apply(&method, path, |_, _| {})
    }

    #[test]
    fn the_operation_is_the_most_specific_rule_that_counted() {
        use RuleOrigin::{Import, Manual};
        let rules = MappingRules::new(vec![
            rule("ANY", "/", 10, Manual, false),
            rule("GET", "/pet/{petId}$", 1, Import, false),
            rule("GET", "/pet/findByStatus$", 2, Import, false),
            rule("GET", "/pet", 11, Manual, false),
            rule("GET", "/pet/secret$", 12, Manual, true),
            rule("GET", "/pet/{x}/photos$", 13, Manual, false),
            rule("GET", "/pet/{y}/photos$", 14, Manual, false),
        ]);
        assert_eq!(operation(&rules, Method::GET, "/pet/findByStatus"), Some(2));
        assert_eq!(operation(&rules, Method::GET, "/pet/7"), Some(1));
        assert_eq!(operation(&rules, Method::GET, "/pet/secret"), Some(12), "a literal beats a parameter");
        assert_eq!(operation(&rules, Method::GET, "/pet"), Some(11));
        assert_eq!(operation(&rules, Method::GET, "/pet/7/photos"), Some(13), "equals: the first by position");
        assert_eq!(operation(&rules, Method::PATCH, "/anything"), Some(10));
        let strict = MappingRules::new(vec![rule("GET", "/pet$", 1, Manual, false)]);
        assert_eq!(operation(&strict, Method::GET, "/other"), None);
    }

    #[test]
    fn the_methods_on_a_path_are_those_of_the_rules_matching_it() {
        use RuleOrigin::{Import, Manual};
        let rules = MappingRules::new(vec![
            rule("POST", "/pet$", 1, Import, false),
            rule("GET", "/pet/{petId}$", 2, Import, false),
            rule("DELETE", "/pet/{petId}$", 3, Import, false),
            rule("GET", "/pet/findByStatus$", 4, Import, false),
            rule("PURGE", "/pet/{petId}$", 5, Manual, false),
        ]);
        assert_eq!(
            rules.methods_on("/pet/7").list(),
            "GET, HEAD, DELETE",
            "HEAD goes with GET; an extension method has no place in the set"
        );
        assert_eq!(rules.methods_on("/pet").list(), "POST");
        assert!(rules.methods_on("/store").is_empty());
    }

    #[test]
    fn a_head_no_rule_counts_is_counted_as_a_get() {
        use RuleOrigin::{Import, Manual};
        let rules = MappingRules::new(vec![
            rule("GET", "/pet/{petId}$", 1, Import, false),
            rule("POST", "/pet$", 2, Import, false),
            rule("HEAD", "/store$", 3, Manual, false),
            rule("GET", "/store$", 4, Manual, false),
        ]);
        assert_eq!(counted(&rules, Method::HEAD, "/pet/7"), [1]);
        assert_eq!(operation(&rules, Method::HEAD, "/pet/7"), Some(1));
        assert!(counted(&rules, Method::HEAD, "/pet").is_empty(), "only GET stands in for HEAD");
        assert_eq!(counted(&rules, Method::HEAD, "/store"), [3], "a rule for HEAD itself wins, alone");
        assert!(counted(&rules, Method::OPTIONS, "/pet/7").is_empty());
    }

    #[test]
    fn imported_rules_count_once_on_the_most_specific_operation() {
        use RuleOrigin::Import;
        let rules = MappingRules::new(vec![
            rule("GET", "/pet/{petId}$", 1, Import, false),
            rule("GET", "/pet/findByStatus$", 2, Import, false),
            rule("POST", "/pet/{petId}$", 3, Import, false),
            rule("GET", "/{kind}/{id}$", 4, Import, false),
        ]);
        assert_eq!(counted(&rules, Method::GET, "/pet/findByStatus"), [2]);
        assert_eq!(counted(&rules, Method::GET, "/pet/7"), [1]);
        assert_eq!(counted(&rules, Method::POST, "/pet/findByStatus"), [3], "only rules of the method");
        assert_eq!(counted(&rules, Method::GET, "/user/7"), [4]);
        assert_eq!(counted(&rules, Method::DELETE, "/pet/7"), Vec::<u32>::new());
    }

    #[test]
    fn hand_made_rules_keep_3scale_semantics_around_the_chosen_operation() {
        use RuleOrigin::{Import, Manual};
        let rules = MappingRules::new(vec![
            rule("ANY", "/", 10, Manual, false),
            rule("GET", "/pet/{petId}$", 1, Import, false),
            rule("GET", "/pet/findByStatus$", 2, Import, false),
            rule("GET", "/pet", 11, Manual, false),
            rule("GET", "/pet/secret$", 12, Manual, true),
            rule("GET", "/pet", 13, Manual, false),
        ]);
        assert_eq!(counted(&rules, Method::GET, "/pet/findByStatus"), [10, 2, 11, 13]);
        assert_eq!(counted(&rules, Method::GET, "/pet/secret"), [10, 1, 11, 12], "`last` stops the walk");
        assert_eq!(counted(&rules, Method::PATCH, "/anything"), [10], "ANY matches every method");
    }
}

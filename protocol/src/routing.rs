//! Routing by consumer and by weight: an API's named upstream groups, the weighted split
//! between them, and the plans and applications sent to one group instead.
//!
//! An API without a [`Routing`] sends every call to its [`crate::Api::upstreams`] (one group
//! named [`DEFAULT_GROUP`]). With one, the agent picks a group per call: the application's
//! override, else its plan's, else a weighted random draw over [`UpstreamGroup::weight`]
//! (groups of weight 0 get only overridden traffic). Routing is a feature older agents
//! cannot apply, so a snapshot that carries any declares [`FEATURE_UPSTREAM_ROUTING`] (see
//! [`crate::Snapshot::requires`]) and a delta carries it in its own [`crate::Change`]s.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::upstream::{Upstream, check_upstream_url};
use crate::validation::ValidationError;

/// The feature a snapshot with routing declares.
pub const FEATURE_UPSTREAM_ROUTING: &str = "upstream_routing";

/// The group every API starts with, holding its upstreams; calls of an API without routing
/// are recorded under this name.
pub const DEFAULT_GROUP: &str = "default";

/// The longest group name, in bytes.
pub const MAX_GROUP_NAME_LEN: usize = 32;

/// The largest weight of one group (so any sum of weights fits comfortably in a `u64`).
pub const MAX_WEIGHT: u32 = 1_000_000;

/// Where one API's calls go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routing {
    pub api_id: Uuid,
    /// At least one; names unique within the API.
    pub groups: Vec<UpstreamGroup>,
    /// Plans sent to one group instead of the split. A plan that no longer exists is ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plans: Vec<RouteOverride>,
    /// Applications sent to one group, whatever their plan says. An application that no
    /// longer exists is ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applications: Vec<RouteOverride>,
}

/// A named set of targets with its share of the API's default split.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamGroup {
    /// [`is_group_name`]: `stable`, `canary`, `v2`.
    pub name: String,
    /// Share of the calls without an override; the weights of an API sum to more than 0.
    pub weight: u32,
    /// At least one; round-robin within the group.
    pub upstreams: Vec<Upstream>,
}

/// A plan or application (by `id`) sent to the group named `group`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteOverride {
    pub id: Uuid,
    pub group: String,
}

impl Routing {
    /// Whether this routing says nothing beyond an API's plain upstreams: one group named
    /// [`DEFAULT_GROUP`] and no overrides. Servers send no [`Routing`] for such an API.
    pub fn is_plain(&self) -> bool {
        self.plans.is_empty()
            && self.applications.is_empty()
            && matches!(self.groups.as_slice(), [only] if only.name == DEFAULT_GROUP)
    }

    pub fn group(&self, name: &str) -> Option<&UpstreamGroup> {
        self.groups.iter().find(|group| group.name == name)
    }
}

/// A group name: 1 to [`MAX_GROUP_NAME_LEN`] lowercase letters, digits, `-` or `_`,
/// starting with a letter or digit.
pub fn is_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_GROUP_NAME_LEN
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Checks the routing entries of a snapshot against its APIs (`api_ids`): one per API, valid
/// groups, weights that sum to more than 0, overrides naming a group of the same API.
pub(crate) fn validate(routing: &[Routing], api_ids: &HashSet<Uuid>) -> Result<(), ValidationError> {
    let mut seen = HashSet::new();
    for (i, entry) in routing.iter().enumerate() {
        let at = format!("routing[{i}]");
        if !api_ids.contains(&entry.api_id) {
            return Err(ValidationError::new(format!("{at}.api_id"), format!("unknown API {}", entry.api_id)));
        }
        if !seen.insert(entry.api_id) {
            return Err(ValidationError::new(
                format!("{at}.api_id"),
                format!("second routing for API {}", entry.api_id),
            ));
        }
        check(entry, &at)?;
    }
    Ok(())
}

/// The rules of one [`Routing`], its problems located under `at`.
pub fn check(routing: &Routing, at: &str) -> Result<(), ValidationError> {
    if routing.groups.is_empty() {
        return Err(ValidationError::new(format!("{at}.groups"), "at least one upstream group is needed"));
    }
    let mut names = HashSet::new();
    let mut total = 0u64;
    for (i, group) in routing.groups.iter().enumerate() {
        let at = format!("{at}.groups[{i}]");
        if !is_group_name(&group.name) {
            return Err(ValidationError::new(
                format!("{at}.name"),
                format!("{:?} is not 1 to {MAX_GROUP_NAME_LEN} of a-z, 0-9, - and _", group.name),
            ));
        }
        if !names.insert(group.name.as_str()) {
            return Err(ValidationError::new(format!("{at}.name"), format!("duplicate group {}", group.name)));
        }
        if group.weight > MAX_WEIGHT {
            return Err(ValidationError::new(format!("{at}.weight"), format!("more than {MAX_WEIGHT}")));
        }
        total += u64::from(group.weight);
        if group.upstreams.is_empty() {
            return Err(ValidationError::new(format!("{at}.upstreams"), "a group needs at least one upstream"));
        }
        for (j, upstream) in group.upstreams.iter().enumerate() {
            check_upstream_url(&upstream.url, &format!("{at}.upstreams[{j}].url"))?;
        }
    }
    if total == 0 {
        return Err(ValidationError::new(format!("{at}.groups"), "the weights must sum to more than 0"));
    }
    for (field, overrides) in [("plans", &routing.plans), ("applications", &routing.applications)] {
        let mut ids = HashMap::new();
        for (i, route) in overrides.iter().enumerate() {
            if !names.contains(route.group.as_str()) {
                return Err(ValidationError::new(
                    format!("{at}.{field}[{i}].group"),
                    format!("unknown group {}", route.group),
                ));
            }
            if ids.insert(route.id, i).is_some() {
                return Err(ValidationError::new(
                    format!("{at}.{field}[{i}].id"),
                    format!("second route for {}", route.id),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, weight: u32) -> UpstreamGroup {
        UpstreamGroup { name: name.into(), weight, upstreams: vec![Upstream { url: "http://127.0.0.1:1".into() }] }
    }

    fn routing() -> Routing {
        Routing {
            api_id: Uuid::from_u128(1),
            groups: vec![group("stable", 90), group("canary", 10)],
            plans: vec![RouteOverride { id: Uuid::from_u128(2), group: "canary".into() }],
            applications: vec![],
        }
    }

    fn error(edit: impl FnOnce(&mut Routing)) -> String {
        let mut r = routing();
        edit(&mut r);
        check(&r, "r").expect_err("invalid").to_string()
    }

    #[test]
    fn problems_are_located() {
        assert_eq!(check(&routing(), "r"), Ok(()));
        assert!(error(|r| r.groups.clear()).starts_with("r.groups:"));
        assert!(error(|r| r.groups[1].name = "Canary".into()).starts_with("r.groups[1].name:"));
        assert!(error(|r| r.groups[1].name = "stable".into()).starts_with("r.groups[1].name: duplicate"));
        assert!(error(|r| r.groups[0].upstreams.clear()).starts_with("r.groups[0].upstreams:"));
        assert!(error(|r| r.groups[0].upstreams[0].url = "ftp://x".into()).starts_with("r.groups[0].upstreams[0].url"));
        assert!(
            error(|r| {
                r.groups[0].weight = 0;
                r.groups[1].weight = 0;
            })
            .contains("sum to more than 0")
        );
        assert!(error(|r| r.groups[0].weight = MAX_WEIGHT + 1).starts_with("r.groups[0].weight"));
        assert!(error(|r| r.plans[0].group = "v9".into()).starts_with("r.plans[0].group: unknown group"));
    }

    #[test]
    fn group_names() {
        for good in ["default", "v2", "canary-eu_1", "0"] {
            assert!(is_group_name(good), "{good}");
        }
        for bad in ["", "-x", "Stable", "a b", "é", &"x".repeat(33)] {
            assert!(!is_group_name(bad), "{bad}");
        }
    }

    #[test]
    fn plain_routing_is_one_default_group() {
        let mut r = routing();
        assert!(!r.is_plain());
        r.groups = vec![group(DEFAULT_GROUP, 100)];
        r.plans.clear();
        assert!(r.is_plain());
    }
}

//! Routing by consumer and by weight: which upstream group serves a call.
//!
//! The application's override wins, then its plan's, then a weighted random draw over the
//! API's groups. The draw uses a per-thread xorshift generator (each proxy worker is one
//! thread), so it takes no lock and allocates nothing; the group is found by a binary search
//! over cumulative weights. The router is part of the compiled config: a weight change is a
//! new config swapped in atomically, and a request in flight keeps the group it drew.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use hyper::header::HeaderValue;
use tollgate_protocol::Routing;
use uuid::Uuid;

use super::upstream::Pool;
use crate::hashing::FxBuildHasher;
use crate::usage::groups::GroupTag;

/// One upstream group: its targets, the tag its calls are recorded under, and its name as
/// the decision endpoint tells it (`x-tollgate-upstream-group`).
pub(crate) struct Group {
    pub tag: GroupTag,
    pub pool: Pool,
    pub name: HeaderValue,
}

/// An API's groups, split and overrides, compiled.
pub(crate) struct Router {
    groups: Box<[Group]>,
    /// Running sums of the groups' weights; the last is the total (more than 0).
    cumulative: Box<[u64]>,
    /// Plan slot → group index.
    plans: HashMap<u32, u16, FxBuildHasher>,
    /// Application id → group index.
    apps: HashMap<Uuid, u16, FxBuildHasher>,
}

impl Router {
    /// `plan_slot` maps a plan id to its slot in the catalog; routes of plans it does not know
    /// (removed since) are dropped, as are those naming an unknown group (validation rules
    /// them out).
    pub fn compile(routing: &Routing, plan_slot: impl Fn(&Uuid) -> Option<u32>) -> Result<Router, String> {
        if routing.groups.len() > usize::from(u16::MAX) {
            return Err("too many upstream groups".into());
        }
        let mut groups = Vec::with_capacity(routing.groups.len());
        let mut cumulative = Vec::with_capacity(routing.groups.len());
        let mut total = 0u64;
        for group in &routing.groups {
            let pool = Pool::new(group.upstreams.iter().map(|u| u.url.as_str()))
                .map_err(|e| format!("group {}: {e}", group.name))?;
            let name =
                HeaderValue::from_str(&group.name).map_err(|_| format!("group {}: not a header value", group.name))?;
            groups.push(Group { tag: GroupTag::intern(&group.name), pool, name });
            total += u64::from(group.weight);
            cumulative.push(total);
        }
        if total == 0 {
            return Err("the weights of the upstream groups sum to 0".into());
        }
        let index = |name: &str| routing.groups.iter().position(|g| g.name == name).map(|i| i as u16);
        let mut plans = HashMap::with_hasher(FxBuildHasher::default());
        for route in &routing.plans {
            if let (Some(slot), Some(group)) = (plan_slot(&route.id), index(&route.group)) {
                plans.insert(slot, group);
            }
        }
        let mut apps = HashMap::with_hasher(FxBuildHasher::default());
        for route in &routing.applications {
            if let Some(group) = index(&route.group) {
                apps.insert(route.id, group);
            }
        }
        Ok(Router { groups: groups.into(), cumulative: cumulative.into(), plans, apps })
    }

    /// The group serving a call of application `app` on plan slot `plan`.
    pub fn pick(&self, app: &Uuid, plan: u32) -> &Group {
        let index = self
            .apps
            .get(app)
            .or_else(|| self.plans.get(&plan))
            .map_or_else(|| self.draw(next_random()), |&i| usize::from(i));
        &self.groups[index.min(self.groups.len() - 1)]
    }

    /// The group a random number `r` lands in, in proportion to the weights.
    fn draw(&self, r: u64) -> usize {
        let total = self.cumulative[self.cumulative.len() - 1];
        // Multiply-shift maps r uniformly onto 0..total without a division.
        let point = ((u128::from(r) * u128::from(total)) >> 64) as u64;
        self.cumulative.partition_point(|&sum| sum <= point)
    }
}

thread_local! {
    static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()) | 1);
}

/// xorshift64*: fast and good enough to split traffic; not for secrets.
fn next_random() -> u64 {
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

#[cfg(test)]
mod tests {
    use tollgate_protocol::{RouteOverride, Upstream, UpstreamGroup};

    use super::*;

    fn routing(weights: &[(&str, u32)]) -> Routing {
        Routing {
            api_id: Uuid::nil(),
            groups: weights
                .iter()
                .map(|&(name, weight)| UpstreamGroup {
                    name: name.into(),
                    weight,
                    upstreams: vec![Upstream { url: format!("http://{name}:1") }],
                })
                .collect(),
            plans: vec![RouteOverride { id: Uuid::from_u128(7), group: "b".into() }],
            applications: vec![RouteOverride { id: Uuid::from_u128(9), group: "c".into() }],
        }
    }

    #[test]
    fn draws_follow_the_cumulative_weights() {
        let router = Router::compile(&routing(&[("a", 90), ("b", 0), ("c", 10)]), |_| None).expect("valid");
        assert_eq!(router.draw(0), 0);
        assert_eq!(router.draw(u64::MAX / 10 * 9 - 1024), 0);
        assert_eq!(router.draw(u64::MAX / 10 * 9 + 1024), 2);
        assert_eq!(router.draw(u64::MAX), 2);
        // Weight 0 is never drawn.
        assert!((0..10_000).all(|_| router.draw(next_random()) != 1));
    }

    #[test]
    fn overrides_win_application_first() {
        let router =
            Router::compile(&routing(&[("a", 1), ("b", 0), ("c", 0)]), |id| (*id == Uuid::from_u128(7)).then_some(3))
                .expect("valid");
        let url = |group: &Group| group.pool.pick().map(|t| t.url.to_string()).unwrap_or_default();
        assert_eq!(url(router.pick(&Uuid::from_u128(1), 0)), "http://a:1");
        assert_eq!(url(router.pick(&Uuid::from_u128(1), 3)), "http://b:1");
        assert_eq!(url(router.pick(&Uuid::from_u128(9), 3)), "http://c:1");
    }
}

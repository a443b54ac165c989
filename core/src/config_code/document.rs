//! The configuration file's format: one YAML document that names every
//! object by its slug or system name, never by a database id (applications,
//! which are consumers' and have no name of their own, are the exception). `export`
//! writes it in a stable order; `parse` reads it back. Fields left out take
//! the value a new object gets in the admin UI.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use time::OffsetDateTime;

use crate::apis::{ApiState, AuthMode, CompatibilityPolicy, KeyLocation};
use crate::billing::BillingMode;
use crate::billing::pricing::PricingMode;
use crate::plans::Period;

/// The format's version; a file of another version is refused.
pub const FORMAT_VERSION: u32 = 1;

/// The whole configuration of a provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Always 1 for now.
    pub version: u32,
    /// Who issues invoices, the tax on them, mode and payment terms; left
    /// out, they stay as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<Billing>,
    /// API products, by slug.
    #[serde(default)]
    pub apis: Vec<Api>,
}

/// The provider's billing settings, as the admin's billing settings page has them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Billing {
    #[serde(default)]
    pub provider_name: String,
    #[serde(default)]
    pub provider_address: String,
    #[serde(default)]
    pub provider_tax_id: String,
    /// A fraction: `'0.2'` is 20 %.
    #[serde(default)]
    pub tax_rate: Amount,
    #[serde(default = "postpaid")]
    pub mode: BillingMode,
    /// Days between an invoice's issue and its due date.
    #[serde(default = "fourteen")]
    pub payment_terms_days: i32,
    /// How partners pay, printed on issued invoices; left out when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub payment_instructions: String,
}

fn postpaid() -> BillingMode {
    BillingMode::Postpaid
}

fn fourteen() -> i32 {
    14
}

/// An API product with everything below it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Api {
    pub slug: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Where the gateway serves it, e.g. `/weather`; `/<slug>` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_host: Option<String>,
    /// Upstream target URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<String>,
    /// Upstream groups and the weighted split between them, and applications
    /// sent to one group; left out, the group `default` (the upstreams) alone.
    #[serde(default, skip_serializing_if = "Routing::is_empty")]
    pub routing: Routing,
    /// Operations the gateway answers from the spec's examples instead of the upstream.
    #[serde(default, skip_serializing_if = "Mocks::is_off")]
    pub mocks: Mocks,
    #[serde(default)]
    pub auth: Auth,
    /// What the gateway answers a request no mapping rule matches.
    #[serde(default)]
    pub unmatched: Unmatched,
    #[serde(default = "strict")]
    pub compatibility_policy: CompatibilityPolicy,
    #[serde(default)]
    pub lifecycle: Lifecycle,
    /// Metrics and methods (a method names its parent metric).
    #[serde(default)]
    pub metrics: Vec<Metric>,
    #[serde(default)]
    pub mapping_rules: Vec<Rule>,
    #[serde(default)]
    pub plans: Vec<Plan>,
    /// The OpenAPI document (2.0, 3.0 or 3.1; JSON or YAML text), inline,
    /// as the portal renders it. A different text publishes a new version.
    pub spec: String,
}

fn strict() -> CompatibilityPolicy {
    CompatibilityPolicy::Strict
}

/// An API's upstream groups and application exceptions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    /// The split, `default` first. Left out (or `default` alone at 100), no split;
    /// export lists every group once there is more than that.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Group>,
    /// Applications sent to one group whatever their plan says, by application id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applications: Vec<ApplicationRoute>,
}

impl Routing {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.applications.is_empty()
    }

    /// The groups there are: those listed, or `default` at 100 when none are.
    pub fn split(&self) -> Vec<Group> {
        if self.groups.is_empty() {
            vec![Group { name: crate::routing::DEFAULT_GROUP.into(), weight: 100, urls: Vec::new() }]
        } else {
            self.groups.clone()
        }
    }
}

/// A named set of upstream targets and its share of the API's calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    /// Calls go to a group in proportion to its weight (0 to 1,000,000).
    pub weight: u32,
    /// Targets; `default` has none here (its targets are the API's `upstreams`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

/// A weight of 100 for `default` alone: what every API starts with.
pub fn is_default_split(groups: &[Group]) -> bool {
    match groups {
        [] => true,
        [only] => only.name == crate::routing::DEFAULT_GROUP && only.weight == 100 && only.urls.is_empty(),
        _ => false,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationRoute {
    /// The application's id (applications are consumers', so a route to one
    /// applies only on the platform that has it).
    pub application: uuid::Uuid,
    pub group: String,
}

/// Mock mode: the whole API, or single operations by their method metric.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mocks {
    #[serde(default, skip_serializing_if = "is_false")]
    pub whole_api: bool,
    /// Method metrics of imported operations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
}

impl Mocks {
    pub fn is_off(&self) -> bool {
        !self.whole_api && self.operations.is_empty()
    }
}

/// How consumers present credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    pub mode: AuthMode,
    pub key_location: KeyLocation,
    /// The query parameter or header carrying the user key.
    pub key_name: String,
}

impl Default for Auth {
    fn default() -> Auth {
        Auth { mode: AuthMode::UserKey, key_location: KeyLocation::Query, key_name: "user_key".into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unmatched {
    /// 404 from the gateway (the default).
    #[default]
    NotFound,
    /// Forwarded uncounted.
    Pass,
}

/// Where the API is in its life; a deprecated API names its sunset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lifecycle {
    pub state: ApiState,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub sunset_at: Option<OffsetDateTime>,
}

impl Default for Lifecycle {
    fn default() -> Lifecycle {
        Lifecycle { state: ApiState::Draft, sunset_at: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metric {
    pub system_name: String,
    /// The parent metric of a method (usually `hits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub friendly_name: String,
    #[serde(default = "hit", skip_serializing_if = "is_hit")]
    pub unit: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

fn hit() -> String {
    "hit".into()
}

fn is_hit(unit: &str) -> bool {
    unit == "hit"
}

/// A mapping rule, named by its method and pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub method: String,
    pub pattern: String,
    pub metric: String,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub delta: i32,
    /// Rules run in position order; left out, the rule's index in the list.
    #[serde(default)]
    pub position: Option<i32>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub last: bool,
    #[serde(default)]
    pub origin: Origin,
}

fn one() -> i32 {
    1
}

fn is_one(n: &i32) -> bool {
    *n == 1
}

fn is_false(b: &bool) -> bool {
    !b
}

/// Whether a rule was made from an imported operation (counts each call
/// once, on the most specific rule) or by hand (every match counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Import,
    #[default]
    Manual,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub system_name: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub published: bool,
    #[serde(default)]
    pub approval_required: bool,
    #[serde(default)]
    pub setup_fee: Amount,
    #[serde(default)]
    pub monthly_fee: Amount,
    #[serde(default)]
    pub trial_days: i32,
    #[serde(default = "usd")]
    pub currency: String,
    #[serde(default = "utc")]
    pub time_zone: String,
    /// Percentages of a limit that alert (50, 80, 90, 100, 120, 150, 200, 300).
    #[serde(default = "default_levels")]
    pub alert_levels: Vec<i64>,
    #[serde(default)]
    pub limits: Vec<Limit>,
    #[serde(default)]
    pub pricing: Vec<Tier>,
    /// Metrics priced in volume mode; the others are graduated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pricing_modes: Vec<Mode>,
    /// The upstream group the plan's calls go to instead of the split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_group: Option<String>,
}

fn usd() -> String {
    "USD".into()
}

fn utc() -> String {
    "UTC".into()
}

fn default_levels() -> Vec<i64> {
    vec![80, 100]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub metric: String,
    pub period: Period,
    pub max: i64,
}

/// Units `from..=to` (no `to`: unbounded) of a metric in a month cost
/// `price_per_unit` each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub metric: String,
    pub from: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<i64>,
    pub price_per_unit: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mode {
    pub metric: String,
    pub mode: PricingMode,
}

/// Money, exact: written as a string (`"9.90"`) so no float ever holds it;
/// a plain YAML number is read too. Compared and written normalised.
#[derive(Debug, Clone, Copy, Default)]
pub struct Amount(pub Decimal);

impl PartialEq for Amount {
    fn eq(&self, other: &Amount) -> bool {
        self.0.normalize() == other.0.normalize()
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.normalize())
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Amount, D::Error> {
        struct Visit;
        impl de::Visitor<'_> for Visit {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal amount such as \"9.90\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Amount, E> {
                Decimal::from_str(v.trim()).map(Amount).map_err(|_| E::custom(format!("`{v}` is not a decimal amount")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Amount, E> {
                Ok(Amount(Decimal::from(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Amount, E> {
                Ok(Amount(Decimal::from(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Amount, E> {
                // The shortest text that reads back as this float, as the file wrote it.
                self.visit_str(&v.to_string())
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

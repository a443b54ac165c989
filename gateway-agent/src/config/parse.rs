//! Snapshot JSON → compiled [`Config`] in one pass.
//!
//! A snapshot of a million keys is a few hundred megabytes of JSON. Parsing it into the
//! protocol's [`tollgate_protocol::Snapshot`] first would hold every credential twice (wire
//! form and compiled form) and validate it through general-purpose hash sets; instead each
//! application and credential is checked and compiled as soon as it is parsed. The checks
//! are those of `Snapshot::validate`: APIs and plans go through it as they are (they are
//! small), applications, credentials and usage through the same per-entry rules (a test
//! holds the two to the same verdicts).
//!
//! Servers write `type` first and the fields in declaration order, so applications arrive
//! after plans and credentials after applications; other orders are accepted too (the
//! out-of-order part is buffered and compiled at the end).

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use tollgate_protocol::{Api, ApiMocks, Application, Credential, CurrentUsage, PROTOCOL_VERSION, Plan, Routing};

use super::compile::{AppsBuilder, CredentialsBuilder, build_catalog, check_usage, check_version};
use super::cow::CowIndex;
use super::model::{Apps, Catalog, Config, ConfigError, CredentialEntry};

/// Whether a config stream line is a snapshot written `type` first, as servers write them
/// (anything else goes through the generic message parser).
pub(crate) fn is_snapshot_line(line: &[u8]) -> bool {
    line.trim_ascii_start().starts_with(br#"{"type":"snapshot""#)
}

/// Parses, validates and compiles a snapshot: a bare [`tollgate_protocol::Snapshot`] (the
/// disk copy) or a `{"type":"snapshot",…}` stream line. Returns the seeded usage apart.
pub(crate) fn parse_snapshot(json: &[u8]) -> Result<(Config, Vec<CurrentUsage>), ConfigError> {
    let invalid = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let parsed = SnapshotSeed { invalid: &invalid }
        .deserialize(&mut deserializer)
        .and_then(|built| deserializer.end().map(|()| built));
    // A validation failure aborts the parse; report it rather than the abort.
    if let Some(err) = invalid.into_inner() {
        return Err(err);
    }
    parsed.map_err(|e| ConfigError::Unreadable(e.to_string()))
}

/// Where a validation failure is kept while serde unwinds.
type Invalid<'a> = &'a RefCell<Option<ConfigError>>;

fn abort<E: de::Error>(invalid: Invalid<'_>, err: impl Into<ConfigError>) -> E {
    *invalid.borrow_mut() = Some(err.into());
    E::custom("invalid snapshot")
}

struct SnapshotSeed<'a> {
    invalid: Invalid<'a>,
}

impl<'de> DeserializeSeed<'de> for SnapshotSeed<'_> {
    type Value = (Config, Vec<CurrentUsage>);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SnapshotSeed<'_> {
    type Value = (Config, Vec<CurrentUsage>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a snapshot object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let invalid = self.invalid;
        let mut version: Option<u32> = None;
        let mut revision: Option<u64> = None;
        let mut generated_at: Option<Timestamp> = None;
        let mut apis: Option<Vec<Api>> = None;
        let mut plans: Option<Vec<Plan>> = None;
        let mut requires: Vec<String> = Vec::new();
        let mut routing: Option<Vec<Routing>> = None;
        let mut catalog: Option<Catalog> = None;
        let mut apps: Option<Apps> = None;
        let mut early_apps: Option<Vec<Application>> = None;
        let mut credentials: Option<CowIndex<[u8; 32], CredentialEntry>> = None;
        let mut early_credentials: Option<Vec<Credential>> = None;
        let mut usage: Option<Vec<CurrentUsage>> = None;
        let mut mocks: Option<Vec<ApiMocks>> = None;

        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match &*key {
                "protocol_version" => {
                    let v: u32 = map.next_value()?;
                    check_version(v, &[]).map_err(|e| abort::<A::Error>(invalid, e))?;
                    version = Some(v);
                }
                "requires" => {
                    requires = map.next_value()?;
                    check_version(version.unwrap_or(PROTOCOL_VERSION), &requires)
                        .map_err(|e| abort::<A::Error>(invalid, e))?;
                }
                "routing" => {
                    let entries: Vec<Routing> = map.next_value()?;
                    // Sent before the applications; from an unusual order, the catalog is
                    // compiled again (it is small).
                    if let Some(built) = catalog.take() {
                        catalog = Some(
                            build_catalog(
                                built.source_apis.clone(),
                                built.source_plans.clone(),
                                entries.clone(),
                                built.source_mocks.clone(),
                            )
                            .map_err(|e| abort::<A::Error>(invalid, e))?,
                        );
                    }
                    routing = Some(entries);
                }
                "revision" => revision = Some(map.next_value()?),
                "generated_at" => generated_at = Some(map.next_value()?),
                "apis" => apis = Some(map.next_value()?),
                "plans" => plans = Some(map.next_value()?),
                "applications" => {
                    if catalog.is_none() && apis.is_some() && plans.is_some() {
                        catalog = Some(
                            catalog_of(apis.take(), plans.take(), routing.clone(), mocks.take())
                                .map_err(|e| abort::<A::Error>(invalid, e))?,
                        );
                    }
                    match &catalog {
                        Some(catalog) => {
                            let builder =
                                map.next_value_seed(AppsSeed { builder: AppsBuilder::new(catalog), invalid })?;
                            apps = Some(builder.finish().map_err(|e| abort::<A::Error>(invalid, e))?);
                        }
                        None => early_apps = Some(map.next_value()?),
                    }
                }
                "credentials" => match &apps {
                    Some(apps) => {
                        let builder =
                            map.next_value_seed(CredentialsSeed { builder: CredentialsBuilder::new(apps), invalid })?;
                        credentials = Some(builder.finish().map_err(|e| abort::<A::Error>(invalid, e))?);
                    }
                    None => early_credentials = Some(map.next_value()?),
                },
                "usage" => usage = Some(map.next_value()?),
                "mocks" => {
                    let arrived: Vec<ApiMocks> = map.next_value()?;
                    match catalog.take() {
                        // After the catalog was compiled: compile it again with them (plan
                        // slots, which applications name, stay as they were).
                        Some(built) => {
                            let rebuilt =
                                build_catalog(built.source_apis, built.source_plans, built.source_routing, arrived);
                            catalog = Some(rebuilt.map_err(|e| abort::<A::Error>(invalid, e))?);
                        }
                        None => mocks = Some(arrived),
                    }
                }
                // `type` of a stream line, or a field of a newer server.
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }

        let version = version.ok_or_else(|| de::Error::missing_field("protocol_version"))?;
        check_version(version, &requires).map_err(|e| abort::<A::Error>(invalid, e))?;
        let revision = revision.ok_or_else(|| de::Error::missing_field("revision"))?;
        let generated_at = generated_at.ok_or_else(|| de::Error::missing_field("generated_at"))?;
        let usage = usage.ok_or_else(|| de::Error::missing_field("usage"))?;
        // Whatever arrived before what it depends on is compiled now.
        let catalog = match catalog {
            Some(catalog) => catalog,
            None => {
                let apis = apis.ok_or_else(|| de::Error::missing_field("apis"))?;
                let plans = plans.ok_or_else(|| de::Error::missing_field("plans"))?;
                catalog_of(Some(apis), Some(plans), routing, mocks).map_err(|e| abort::<A::Error>(invalid, e))?
            }
        };
        let apps = match apps {
            Some(apps) => apps,
            None => {
                let early = early_apps.ok_or_else(|| de::Error::missing_field("applications"))?;
                let mut builder = AppsBuilder::new(&catalog);
                for app in early {
                    builder.push(app).map_err(|e| abort::<A::Error>(invalid, e))?;
                }
                builder.finish().map_err(|e| abort::<A::Error>(invalid, e))?
            }
        };
        let credentials = match credentials {
            Some(credentials) => credentials,
            None => {
                let early = early_credentials.ok_or_else(|| de::Error::missing_field("credentials"))?;
                let mut builder = CredentialsBuilder::new(&apps);
                for credential in early {
                    builder.push(credential).map_err(|e| abort::<A::Error>(invalid, e))?;
                }
                builder.finish().map_err(|e| abort::<A::Error>(invalid, e))?
            }
        };
        let config = Config { revision, generated_at, catalog: Arc::new(catalog), apps, credentials };
        check_usage(&usage, &config).map_err(|e| abort::<A::Error>(invalid, e))?;
        Ok((config, usage))
    }
}

fn catalog_of(
    apis: Option<Vec<Api>>,
    plans: Option<Vec<Plan>>,
    routing: Option<Vec<Routing>>,
    mocks: Option<Vec<ApiMocks>>,
) -> Result<Catalog, ConfigError> {
    build_catalog(
        apis.unwrap_or_default(),
        plans.unwrap_or_default().into_iter().map(Some).collect(),
        routing.unwrap_or_default(),
        mocks.unwrap_or_default(),
    )
}

/// Compiles applications as the array is parsed.
struct AppsSeed<'a> {
    builder: AppsBuilder<'a>,
    invalid: Invalid<'a>,
}

impl<'de, 'a> DeserializeSeed<'de> for AppsSeed<'a> {
    type Value = AppsBuilder<'a>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, 'a> Visitor<'de> for AppsSeed<'a> {
    type Value = AppsBuilder<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of applications")
    }

    fn visit_seq<S: SeqAccess<'de>>(mut self, mut seq: S) -> Result<Self::Value, S::Error> {
        while let Some(app) = seq.next_element::<Application>()? {
            self.builder.push(app).map_err(|e| abort::<S::Error>(self.invalid, e))?;
        }
        Ok(self.builder)
    }
}

/// Compiles credentials as the array is parsed.
struct CredentialsSeed<'a> {
    builder: CredentialsBuilder,
    invalid: Invalid<'a>,
}

impl<'de, 'a> DeserializeSeed<'de> for CredentialsSeed<'a> {
    type Value = CredentialsBuilder;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, 'a> Visitor<'de> for CredentialsSeed<'a> {
    type Value = CredentialsBuilder;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of credentials")
    }

    fn visit_seq<S: SeqAccess<'de>>(mut self, mut seq: S) -> Result<Self::Value, S::Error> {
        while let Some(credential) = seq.next_element::<Credential>()? {
            self.builder.push(credential).map_err(|e| abort::<S::Error>(self.invalid, e))?;
        }
        Ok(self.builder)
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use tollgate_protocol::{
        Api, Application, ApplicationState, AuthMode, ConfigMessage, Credential, CurrentUsage, KeyHash, KeyKind,
        KeyLocation, Lifecycle, Limit, MappingRule, Metric, NoMatch, Period, Plan, RuleOrigin, Snapshot, TimeZoneName,
        Upstream, WindowId,
    };
    use uuid::Uuid;

    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn api(n: u128, base_path: &str) -> Api {
        Api {
            id: id(n),
            slug: format!("api{n}"),
            hosts: vec![],
            base_path: base_path.into(),
            upstreams: vec![Upstream { url: "http://127.0.0.1:9".into() }],
            lifecycle: Lifecycle::Published,
            auth: AuthMode::UserKey { location: KeyLocation::Query { name: "user_key".into() } },
            metrics: vec![Metric { id: id(n * 10), system_name: "hits".into(), parent: None }],
            mapping_rules: vec![MappingRule {
                http_method: "GET".into(),
                pattern: "/".into(),
                metric: id(n * 10),
                delta: 1,
                position: 1,
                last: false,
                origin: RuleOrigin::Import,
            }],
            on_no_match: NoMatch::NotFound,
        }
    }

    fn sample() -> Snapshot {
        let mut s = Snapshot::new(7, Timestamp::UNIX_EPOCH);
        s.apis = vec![api(1, "/a"), api(2, "/b")];
        for (plan, api) in [(100, 1), (200, 2)] {
            s.plans.push(Plan {
                id: id(plan),
                api_id: id(api),
                time_zone: TimeZoneName::utc(),
                limits: vec![Limit { metric: id(api * 10), period: Period::Day, max: 10 }],
            });
        }
        for (app, plan, app_id) in [(1000, 100, None), (2000, 200, Some("public"))] {
            s.applications.push(Application {
                id: id(app),
                plan_id: id(plan),
                state: ApplicationState::Live,
                app_id: app_id.map(str::to_owned),
            });
        }
        for (n, app, kind) in [(1, 1000, KeyKind::UserKey), (2, 2000, KeyKind::AppKey)] {
            s.credentials.push(Credential {
                hash: KeyHash::of(&format!("key{n}")),
                kind,
                application_id: id(app),
                expires_at: None,
            });
        }
        s.usage.push(CurrentUsage {
            application_id: id(1000),
            metric: id(10),
            period: Period::Day,
            window_start: WindowId(0),
            value: 3,
        });
        s
    }

    /// The one-pass compiler must reach the protocol's verdict, whatever the field order.
    #[test]
    fn agrees_with_snapshot_validate() {
        type Mutation = fn(&mut Snapshot);
        let mutations: Vec<(&str, Mutation)> = vec![
            ("valid", |_| {}),
            ("version", |s| s.protocol_version = 99),
            ("duplicate application", |s| {
                let app = s.applications[0].clone();
                s.applications.push(app);
            }),
            ("duplicate app_id", |s| s.applications[0].app_id = Some("public".into())),
            ("empty app_id", |s| s.applications[0].app_id = Some(String::new())),
            ("unknown plan", |s| s.applications[0].plan_id = id(999)),
            ("duplicate credential", |s| {
                let credential = s.credentials[0].clone();
                s.credentials.push(credential);
            }),
            ("admin token", |s| s.credentials[0].kind = KeyKind::AdminToken),
            ("unknown application", |s| s.credentials[0].application_id = id(999)),
            ("usage of unknown app", |s| s.usage[0].application_id = id(999)),
            ("usage of another API's metric", |s| s.usage[0].metric = id(20)),
            ("usage of unknown metric", |s| s.usage[0].metric = id(999)),
            ("duplicate usage", |s| {
                let usage = s.usage[0].clone();
                s.usage.push(usage);
            }),
            ("plan of unknown API", |s| s.plans[0].api_id = id(999)),
            ("bad pattern", |s| s.apis[0].mapping_rules[0].pattern = "/{x".into()),
            ("shared route", |s| s.apis[1].base_path = "/a".into()),
        ];
        for (name, mutate) in mutations {
            let mut snapshot = sample();
            mutate(&mut snapshot);
            let expected = snapshot.validate();
            let line = serde_json::to_vec(&ConfigMessage::Snapshot(snapshot.clone())).expect("json");
            assert!(is_snapshot_line(&line));
            // serde_json::Value sorts keys: applications and credentials before plans.
            let shuffled = serde_json::to_vec(&serde_json::to_value(&snapshot).expect("value")).expect("json");
            for json in [line, shuffled] {
                let compiled = parse_snapshot(&json);
                assert_eq!(compiled.is_ok(), expected.is_ok(), "{name}: {:?} vs {expected:?}", compiled.err());
                if let (Err(ConfigError::Invalid(ours)), Err(theirs)) = (&compiled, &expected) {
                    // Same field; the index may differ where the protocol names the second of a
                    // duplicate pair and we name the first.
                    let field = |path: &str| path.rsplit('.').next().unwrap_or_default().to_owned();
                    assert!(
                        field(&ours.path) == field(&theirs.path)
                            || ours.path.starts_with(theirs.path.split('[').next().unwrap_or_default()),
                        "{name}: {ours} vs {theirs}"
                    );
                }
            }
            assert_eq!(super::super::compile_snapshot(snapshot).is_ok(), expected.is_ok(), "{name}");
        }
    }

    #[test]
    fn compiled_tables_and_garbage() {
        let snapshot = sample();
        let json = serde_json::to_vec(&snapshot).expect("json");
        let (config, usage) = parse_snapshot(&json).expect("valid");
        assert_eq!(config.revision, 7);
        assert_eq!(usage.len(), 1);
        assert_eq!(config.credentials.len(), 2);
        let entry = config.credentials.get(&KeyHash::of("key2").0).expect("key");
        let app = config.apps.get(entry.app).expect("app");
        assert_eq!(app.id, id(2000));
        assert_eq!(config.apps.by_app_id.get("public"), Some(&entry.app));
        assert_eq!(config.catalog.plan(app.plan).map(|p| p.api), Some(1));
        assert!(matches!(parse_snapshot(b"{\"revision\":"), Err(ConfigError::Unreadable(_))));
        assert!(matches!(parse_snapshot(b"{}"), Err(ConfigError::Unreadable(_))));
    }
}

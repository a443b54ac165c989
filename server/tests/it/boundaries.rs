//! The layering of the workspace, checked from its `Cargo.toml` files and
//! `Cargo.lock`: `{protocol, openapi} ← core ← web ← {portal, admin} ←
//! server` and `protocol ← gateway-agent`. The agent never reaches core,
//! sqlx or actix; protocol and openapi do no I/O; core has no actix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace holds server/").to_owned()
}

fn read_toml(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The crates a member names in one of its dependency tables.
fn dependencies(member: &str, table: &str) -> BTreeSet<String> {
    let manifest = read_toml(&workspace().join(member).join("Cargo.toml"));
    manifest.get(table).and_then(toml::Value::as_table).map(|deps| deps.keys().cloned().collect()).unwrap_or_default()
}

/// Every crate a member's normal dependencies pull in, from `Cargo.lock`.
/// Registry crates list only their own normal and build dependencies there.
fn closure(member: &str) -> BTreeSet<String> {
    let lock = read_toml(&workspace().join("Cargo.lock"));
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for package in lock["package"].as_array().expect("[[package]] entries") {
        let name = package["name"].as_str().expect("a name").to_owned();
        let deps = package.get("dependencies").and_then(toml::Value::as_array).into_iter().flatten();
        let deps = deps.filter_map(toml::Value::as_str).map(|d| d.split(' ').next().unwrap_or(d).to_owned());
        graph.entry(name).or_default().extend(deps);
    }
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = dependencies(member, "dependencies").into_iter().collect();
    while let Some(name) = todo.pop() {
        if seen.insert(name.clone()) {
            todo.extend(graph.get(&name).into_iter().flatten().cloned());
        }
    }
    seen
}

/// Crates that open sockets or files, or run an async runtime.
fn does_io(name: &str) -> bool {
    const IO: [&str; 12] = [
        "tokio",
        "mio",
        "socket2",
        "hyper",
        "reqwest",
        "redis",
        "lettre",
        "async-std",
        "actix-rt",
        "actix-web",
        "sqlx",
        "sqlx-core",
    ];
    IO.contains(&name) || name.starts_with("sqlx-") || name.starts_with("actix-") || name.starts_with("hyper-")
}

#[test]
fn each_crate_depends_only_on_the_layers_below_it() {
    let below: [(&str, &[&str]); 8] = [
        ("protocol", &[]),
        ("openapi", &[]),
        ("core", &["tollgate-protocol", "tollgate-openapi"]),
        ("web", &["tollgate-core"]),
        ("portal", &["tollgate-core", "tollgate-web", "tollgate-openapi", "tollgate-protocol"]),
        ("admin", &["tollgate-core", "tollgate-web", "tollgate-openapi"]),
        (
            "server",
            &[
                "tollgate-core",
                "tollgate-web",
                "tollgate-portal",
                "tollgate-admin",
                "tollgate-openapi",
                "tollgate-protocol",
            ],
        ),
        ("gateway-agent", &["tollgate-protocol"]),
    ];
    for (member, allowed) in below {
        for table in ["dependencies", "build-dependencies"] {
            for dep in dependencies(member, table).iter().filter(|d| d.starts_with("tollgate")) {
                assert!(
                    allowed.contains(&dep.as_str()),
                    "{member} [{table}] depends on {dep}, a layer it must not use"
                );
            }
        }
    }
}

#[test]
fn the_agent_never_reaches_core_sqlx_or_actix() {
    for table in ["dependencies", "dev-dependencies", "build-dependencies"] {
        for dep in dependencies("gateway-agent", table) {
            let forbidden = dep == "tollgate-core" || dep.starts_with("sqlx") || dep.starts_with("actix");
            assert!(!forbidden, "gateway-agent [{table}] depends on {dep}");
        }
    }
    let reached: Vec<String> = closure("gateway-agent")
        .into_iter()
        .filter(|c| c == "tollgate-core" || c.starts_with("sqlx") || c.starts_with("actix"))
        .collect();
    assert!(reached.is_empty(), "gateway-agent pulls in {reached:?}");
}

#[test]
fn protocol_and_openapi_do_no_io() {
    for member in ["protocol", "openapi"] {
        let io: Vec<String> = closure(member).into_iter().filter(|c| does_io(c)).collect();
        assert!(io.is_empty(), "{member} pulls in crates that do I/O: {io:?}");
    }
}

#[test]
fn core_has_no_web_framework_and_no_html_templates() {
    let web: Vec<String> =
        closure("core").into_iter().filter(|c| c.starts_with("actix") || c.starts_with("askama")).collect();
    assert!(web.is_empty(), "core pulls in {web:?}");
}

#[test]
fn the_checks_see_what_they_check() {
    // A check that reads nothing cannot fail: make sure the files are read.
    assert!(closure("core").contains("sqlx"), "core's closure holds sqlx");
    assert!(closure("web").contains("actix-web"), "web's closure holds actix-web");
    assert!(does_io("tokio") && !does_io("serde"));
    assert!(dependencies("gateway-agent", "dependencies").contains("tollgate-protocol"));
}

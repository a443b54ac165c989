//! Routing a request to an API by host and base path.
//!
//! One radix-tree router (matchit) per host over the base paths of the APIs on that host,
//! plus one for APIs that answer on any host; a host's own router is tried first. Lookups
//! borrow the request's host and path and never allocate.

use std::collections::HashMap;

use matchit::Router;

/// The API a request is for, and where the path below its base path starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub api: u32,
    pub rest_offset: usize,
}

#[derive(Default)]
pub(crate) struct Routes {
    hosts: HashMap<Box<str>, Router<Entry>>,
    any_host: Router<Entry>,
}

#[derive(Clone, Copy)]
struct Entry {
    api: u32,
    base_path_len: usize,
}

impl Routes {
    /// Adds an API at `base_path` (`/` or `/segment…` without trailing slash) on `hosts`
    /// (empty: any host).
    pub fn add(&mut self, api: u32, hosts: &[String], base_path: &str) -> Result<(), String> {
        let entry = Entry { api, base_path_len: if base_path == "/" { 0 } else { base_path.len() } };
        if hosts.is_empty() {
            return insert(&mut self.any_host, base_path, entry);
        }
        for host in hosts {
            let router = self.hosts.entry(host.as_str().into()).or_default();
            insert(router, base_path, entry)?;
        }
        Ok(())
    }

    /// `host` is the request's Host without port; `path` the raw request path.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<Route> {
        let hit = host
            .and_then(|host| self.hosts.get(host))
            .and_then(|router| router.at(path).ok())
            .or_else(|| self.any_host.at(path).ok())?;
        Some(Route { api: hit.value.api, rest_offset: hit.value.base_path_len })
    }
}

/// A base path answers for itself and everything below it, by whole segments.
fn insert(router: &mut Router<Entry>, base_path: &str, entry: Entry) -> Result<(), String> {
    // matchit reads `{` and `}` as parameter syntax; a literal brace is written twice.
    let escaped = base_path.replace('{', "{{").replace('}', "}}");
    let prefix = escaped.trim_end_matches('/');
    let routes = [
        if prefix.is_empty() { "/".to_owned() } else { prefix.to_owned() },
        format!("{prefix}/"),
        format!("{prefix}/{{*rest}}"),
    ];
    for route in routes {
        match router.insert(route.as_str(), entry) {
            Ok(()) => {}
            // `/` is both the base and "base plus slash" for the root path.
            Err(matchit::InsertError::Conflict { .. }) if base_path == "/" && route == "/" => {}
            Err(err) => return Err(format!("base path {base_path}: {err}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        let mut routes = Routes::default();
        routes.add(0, &[], "/pets").expect("add");
        routes.add(1, &[], "/pets/v2").expect("add");
        routes.add(2, &["api.example.com".into()], "/").expect("add");
        routes.add(3, &["api.example.com".into()], "/pets").expect("add");
        routes.add(4, &[], "/odd{x}").expect("add");
        routes
    }

    fn find(host: Option<&str>, path: &str) -> Option<(u32, usize)> {
        routes().find(host, path).map(|r| (r.api, r.rest_offset))
    }

    #[test]
    fn base_paths_match_whole_segments() {
        assert_eq!(find(None, "/pets"), Some((0, 5)));
        assert_eq!(find(None, "/pets/"), Some((0, 5)));
        assert_eq!(find(None, "/pets/7/photos"), Some((0, 5)));
        assert_eq!(find(None, "/petshop"), None);
        assert_eq!(find(None, "/pets/v2"), Some((1, 8)));
        assert_eq!(find(None, "/pets/v2/x"), Some((1, 8)));
        assert_eq!(find(None, "/pets/v2x"), Some((0, 5)));
        assert_eq!(find(None, "/"), None);
        assert_eq!(find(None, "/odd{x}/a"), Some((4, 7)));
    }

    #[test]
    fn hosts_first_then_any_host() {
        assert_eq!(find(Some("api.example.com"), "/pets/1"), Some((3, 5)));
        assert_eq!(find(Some("api.example.com"), "/other"), Some((2, 0)));
        assert_eq!(find(Some("api.example.com"), "/"), Some((2, 0)));
        assert_eq!(find(Some("other.example.com"), "/pets/1"), Some((0, 5)));
    }
}

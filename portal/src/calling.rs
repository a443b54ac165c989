//! How an application calls an API through the gateway: the address (the
//! configured gateway URL and the API's base path) and where its
//! credentials go (the API's key location and name), for the API page's
//! samples and the key box of an application's page.

use tollgate_core::apis::detail::ApiDetail;
use tollgate_core::apis::{AuthMode, KeyLocation};

pub(crate) struct CallGuide {
    /// The gateway URL and the API's base path, without a trailing `/`.
    pub base_url: String,
    pub key_location: KeyLocation,
    key_name: String,
    auth_mode: AuthMode,
}

impl CallGuide {
    pub(crate) fn new(gateway: &str, api: &ApiDetail) -> CallGuide {
        CallGuide {
            base_url: format!("{}{}", gateway.trim_end_matches('/'), api.base_path.trim_end_matches('/')),
            key_location: api.key_location,
            key_name: api.key_name.clone(),
            auth_mode: api.auth_mode,
        }
    }

    /// The credentials as (name, value): the user key under the API's
    /// name, or `app_id` and `app_key`.
    fn credentials(&self, secret: &str, app_id: Option<&str>) -> Vec<(String, String)> {
        match self.auth_mode {
            AuthMode::UserKey => vec![(self.key_name.clone(), secret.to_owned())],
            AuthMode::AppIdAppKey => vec![
                ("app_id".to_owned(), app_id.unwrap_or("YOUR_APP_ID").to_owned()),
                ("app_key".to_owned(), secret.to_owned()),
            ],
        }
    }

    /// The names of the credentials a call sends together, for the OpenAPI document.
    pub(crate) fn credential_names(&self) -> Vec<&str> {
        match self.auth_mode {
            AuthMode::UserKey => vec![self.key_name.as_str()],
            AuthMode::AppIdAppKey => vec!["app_id", "app_key"],
        }
    }

    /// The URL of `path`, with the credentials when they go in the query.
    pub(crate) fn url(&self, path: &str, secret: &str, app_id: Option<&str>) -> String {
        let url = format!("{}{path}", self.base_url);
        match self.key_location {
            KeyLocation::Query => {
                let query: Vec<String> =
                    self.credentials(secret, app_id).into_iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{url}?{}", query.join("&"))
            }
            KeyLocation::Header => url,
        }
    }

    /// The headers carrying the credentials, when they go in headers.
    pub(crate) fn headers(&self, secret: &str, app_id: Option<&str>) -> Vec<(String, String)> {
        match self.key_location {
            KeyLocation::Query => Vec::new(),
            KeyLocation::Header => self.credentials(secret, app_id),
        }
    }

    /// A ready-to-paste curl command. `--globoff`: curl would read `{a,b}` and `[1-3]` in a URL
    /// (an IPv6 gateway address included) as patterns and call other URLs.
    pub(crate) fn curl(&self, method: &str, path: &str, secret: &str, app_id: Option<&str>) -> String {
        let url = self.url(path, secret, app_id);
        let mut parts = vec![match method {
            "GET" => format!("curl --globoff '{url}'"),
            m => format!("curl --globoff -X {m} '{url}'"),
        }];
        for (name, value) in self.headers(secret, app_id) {
            parts.push(format!("-H '{name}: {value}'"));
        }
        parts.join(" \\\n  ")
    }

    /// Where the credentials go, in words.
    pub(crate) fn where_credentials_go(&self) -> String {
        match (self.auth_mode, self.key_location) {
            (AuthMode::UserKey, KeyLocation::Query) => {
                format!("Send the key as the {} query parameter.", self.key_name)
            }
            (AuthMode::UserKey, KeyLocation::Header) => format!("Send the key in the {} header.", self.key_name),
            (AuthMode::AppIdAppKey, KeyLocation::Query) => "Send app_id and app_key as query parameters.".to_owned(),
            (AuthMode::AppIdAppKey, KeyLocation::Header) => "Send app_id and app_key as request headers.".to_owned(),
        }
    }
}

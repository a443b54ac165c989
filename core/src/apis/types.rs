//! The vocabulary of API products that every file of `apis` shares: their
//! id, their lifecycle state and how consumers present credentials.

use uuid::Uuid;

use crate::stored::stored_enum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ApiId(pub Uuid);

stored_enum! {
    /// Where an API is in its life: `draft → published → deprecated (with a
    /// sunset date) → retired`; see `lifecycle` for the moves allowed.
    pub enum ApiState as "api_state" {
        Draft = "draft",
        Published = "published",
        Deprecated = "deprecated",
        Retired = "retired",
    }
}

impl ApiState {
    /// The moves an admin may make: publish a draft, deprecate or retire a
    /// published API, and bring a deprecated or retired one back.
    pub fn can_become(self, next: ApiState) -> bool {
        use ApiState::*;
        matches!(
            (self, next),
            (Draft, Published)
                | (Published, Deprecated)
                | (Deprecated, Published)
                | (Deprecated, Retired)
                | (Published, Retired)
                | (Retired, Published)
        )
    }

    /// Whether developers see the API in the catalog and may subscribe to it.
    pub fn is_listed(self) -> bool {
        matches!(self, ApiState::Published | ApiState::Deprecated)
    }
}

stored_enum! {
    /// How consumers present credentials to the gateway.
    pub enum AuthMode as "auth_mode" {
        /// One secret identifies the application.
        UserKey = "user_key",
        /// A public app_id plus one of the application's app keys.
        AppIdAppKey = "app_id_app_key",
    }
}

stored_enum! {
    /// Where in a request the gateway reads credentials.
    pub enum KeyLocation as "key_location" {
        Query = "query",
        Header = "header",
    }
}

stored_enum! {
    /// Whether a new value in a response enum breaks clients; the engine's
    /// `tollgate_openapi::CompatibilityPolicy`, stored per API.
    pub enum CompatibilityPolicy as "compatibility_policy" {
        /// Any new response enum value is breaking (the default): clients
        /// generated with closed enums fail on values they do not know.
        Strict = "strict",
        /// New response enum values are not breaking: the API tells its
        /// clients to expect them, as Stripe and GitHub do.
        AdditiveEnums = "additive_enums",
    }
}

impl CompatibilityPolicy {
    pub fn engine(self) -> tollgate_openapi::CompatibilityPolicy {
        match self {
            CompatibilityPolicy::Strict => tollgate_openapi::CompatibilityPolicy::Strict,
            CompatibilityPolicy::AdditiveEnums => tollgate_openapi::CompatibilityPolicy::AdditiveEnums,
        }
    }

    /// What the setting means, shown beside it.
    pub fn explanation(self) -> &'static str {
        match self {
            CompatibilityPolicy::Strict => {
                "Any new value in a response enum is a breaking change: clients generated with closed enums (the default of many OpenAPI generators) fail on values they do not know."
            }
            CompatibilityPolicy::AdditiveEnums => {
                "New values in response enums are not breaking: your API documentation tells clients to expect new values, as Stripe's and GitHub's do. Removed values and request enums are judged as before."
            }
        }
    }
}

stored_enum! {
    /// Where a staged version's change report is.
    pub enum ReportState as "report_state" {
        Queued = "queued",
        Running = "running",
        Ready = "ready",
        Failed = "failed",
    }
}

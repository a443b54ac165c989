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

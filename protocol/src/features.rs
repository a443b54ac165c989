//! Features a snapshot may require: what an agent must understand to apply it.
//!
//! Adding an optional field is not breaking (older agents ignore it), but some additions
//! change where traffic goes, and an agent that ignored them would silently do the wrong
//! thing. A snapshot that uses such a feature lists it in [`crate::Snapshot::requires`] and carries
//! [`PROTOCOL_VERSION`] instead of [`BASE_PROTOCOL_VERSION`]: agents of version 1 refuse any
//! other version, and agents of version 2 or later refuse a required feature they do not
//! know. A snapshot that uses none stays at version 1, so older agents keep working for
//! installs that never use the new features. Deltas carry such features in [`crate::Change`]
//! variants of their own, which an older agent cannot read and so refuses.

use crate::endpoints::{BASE_PROTOCOL_VERSION, PROTOCOL_VERSION};
use crate::mock::{ApiMocks, FEATURE_MOCKS};
use crate::routing::{FEATURE_UPSTREAM_ROUTING, Routing};
use crate::validation::ValidationError;

/// Every feature this build can apply.
pub const KNOWN_FEATURES: &[&str] = &[FEATURE_UPSTREAM_ROUTING, FEATURE_MOCKS];

/// The features a snapshot with this `routing` and these `mocks` uses, in
/// [`KNOWN_FEATURES`] order.
pub fn features_of(routing: &[Routing], mocks: &[ApiMocks]) -> Vec<String> {
    let mut used = Vec::new();
    if !routing.is_empty() {
        used.push(FEATURE_UPSTREAM_ROUTING.to_owned());
    }
    if !mocks.is_empty() {
        used.push(FEATURE_MOCKS.to_owned());
    }
    used
}

/// The protocol version a snapshot requiring `features` carries.
pub fn version_for(features: &[String]) -> u32 {
    if features.is_empty() { BASE_PROTOCOL_VERSION } else { PROTOCOL_VERSION }
}

/// Whether this build speaks `version` and knows every feature in `requires`.
pub fn check_support(version: u32, requires: &[String]) -> Result<(), ValidationError> {
    if !(BASE_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version) {
        return Err(ValidationError::new(
            "protocol_version",
            format!("unsupported version {version} (this agent reads {BASE_PROTOCOL_VERSION} to {PROTOCOL_VERSION})"),
        ));
    }
    for (i, feature) in requires.iter().enumerate() {
        if !KNOWN_FEATURES.contains(&feature.as_str()) {
            return Err(ValidationError::new(format!("requires[{i}]"), format!("unknown feature {feature:?}")));
        }
    }
    Ok(())
}

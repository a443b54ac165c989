//! The events a webhook subscription can pick, and which audit entries raise them.

use std::fmt;

use serde_json::Value;

use crate::UnknownName;

macro_rules! events {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// Something that happened that providers may want to hear about.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $($(#[$doc])* $variant,)*
        }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The wire name, e.g. `application.created`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)*
                }
            }
        }
    };
}

events! {
    AccountCreated = "account.created",
    ApplicationCreated = "application.created",
    /// A pending application was approved (it went live).
    ApplicationApproved = "application.approved",
    ApplicationSuspended = "application.suspended",
    ApplicationPlanChanged = "application.plan_changed",
    KeyCreated = "key.created",
    KeyRotated = "key.rotated",
    KeyRevoked = "key.revoked",
    /// An application crossed an alert level of one of its limits.
    UsageAlert = "usage.alert",
    InvoiceIssued = "invoice.issued",
    InvoicePaid = "invoice.paid",
    ApiPublished = "api.published",
    ApiDeprecated = "api.deprecated",
    ApiRetired = "api.retired",
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventType {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<EventType, UnknownName> {
        EventType::ALL.iter().copied().find(|e| e.as_str() == s).ok_or_else(|| UnknownName {
            value: s.to_owned(),
            expected: EventType::ALL.iter().map(|e| e.as_str()).collect(),
        })
    }
}

/// The event an audit entry stands for, if any. Most events are audited changes,
/// so the audit log is the one place that raises them.
pub fn from_audit(action: &str, before: Option<&Value>, after: Option<&Value>) -> Option<EventType> {
    fn state(v: Option<&Value>) -> Option<&str> {
        v.and_then(|v| v.get("state")).and_then(Value::as_str)
    }
    match action {
        "application.create" => Some(EventType::ApplicationCreated),
        // A move an admin makes, or one a developer asked for and an admin approved.
        "application.change_plan" | "application.approve_plan" => Some(EventType::ApplicationPlanChanged),
        "application.transition" => match (state(before), state(after)) {
            (Some("pending"), Some("live")) => Some(EventType::ApplicationApproved),
            (_, Some("suspended")) => Some(EventType::ApplicationSuspended),
            _ => None,
        },
        "credential.issue" => Some(EventType::KeyCreated),
        "credential.rotate" => Some(EventType::KeyRotated),
        "credential.revoke" => Some(EventType::KeyRevoked),
        "api.lifecycle" => match state(after) {
            Some("published") => Some(EventType::ApiPublished),
            Some("deprecated") => Some(EventType::ApiDeprecated),
            Some("retired") => Some(EventType::ApiRetired),
            _ => None,
        },
        _ if action.starts_with("invoice.") => match state(after) {
            Some("pending") => Some(EventType::InvoiceIssued),
            Some("paid") => Some(EventType::InvoicePaid),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for event in EventType::ALL {
            assert_eq!(event.as_str().parse::<EventType>(), Ok(*event));
        }
        let err = "application.exploded".parse::<EventType>().unwrap_err();
        assert!(err.to_string().contains("application.created"), "{err}");
    }

    #[test]
    fn audit_entries_map_to_events_by_their_states() {
        let s = |v: &str| json!({"state": v});
        assert_eq!(
            from_audit("application.transition", Some(&s("pending")), Some(&s("live"))),
            Some(EventType::ApplicationApproved)
        );
        // Resuming a suspended application is not an approval.
        assert_eq!(from_audit("application.transition", Some(&s("suspended")), Some(&s("live"))), None);
        assert_eq!(from_audit("api.lifecycle", None, Some(&s("retired"))), Some(EventType::ApiRetired));
        assert_eq!(from_audit("invoice.pay", None, Some(&s("paid"))), Some(EventType::InvoicePaid));
        assert_eq!(from_audit("plan.update", None, None), None);
    }
}

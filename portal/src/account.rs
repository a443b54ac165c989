//! The signed-in developer's account: every portal page about apps, keys
//! and the team is scoped to it.

use tollgate_core::accounts::{AccountId, UserSummary};

/// The user's account; a user without one (a provider admin) has nothing
/// here, so the page is not found.
pub(crate) fn account_of(user: &UserSummary) -> tollgate_core::Result<AccountId> {
    user.account_id.ok_or(tollgate_core::Error::NotFound)
}

//! Accounts (developer organisations and the provider), users and memberships.

mod email;
mod password;
mod users;

pub use email::Email;
pub use password::{Password, PasswordHasher};
pub use users::{
    AccountId, SignInOutcome, UserId, UserSummary, authenticate, create_admin, create_developer,
    find_user, mark_email_verified,
};

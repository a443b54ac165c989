//! Accounts (developer organisations and the provider), users and memberships.

pub mod deletion;
pub mod directory;
mod email;
pub mod email_change;
pub mod flows;
mod password;
pub mod teams;
pub mod throttle;
pub mod tokens;
mod users;

pub use email::Email;
pub use password::{Password, PasswordHasher};
pub use throttle::{ClientAddress, MailAdmission, MailLimits, MailRequestKind};
pub use users::{
    AccountId, Organisation, SignInOutcome, UserId, UserSummary, authenticate, create_admin, create_developer,
    create_developer_in, find_user, mark_email_verified, switch_organisation,
};

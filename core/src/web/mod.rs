//! Actix glue shared by the portal and the admin UI: server-side sessions,
//! CSRF-checked forms, the page chrome and HTML error pages.

mod csrf;
mod form;
mod page;
mod session;

pub use csrf::CsrfForm;
pub use form::FieldErrors;
pub use page::{Chrome, ErrorPage, Flash, GatewayUrl, PublicUrl, render};
pub use session::{AdminUser, CookiePolicy, SESSION_COOKIE, Session, SignedInUser, session_middleware};

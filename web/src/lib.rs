//! The web layer shared by the developer portal, the admin UI and REST API,
//! and the server's agent API: everything that turns HTTP into calls on
//! `tollgate_core` and core's answers back into HTTP.
//!
//! * `session`: server-side sessions (the middleware and the `Session` extractor);
//! * `guards`: `SignedInUser` and `AdminUser`;
//! * `client_ip`: the client's address for the throttles (behind trusted proxies too);
//! * `csrf`: `CsrfForm<T>` (and `EmptyForm` for buttons);
//! * `layout`, `page`: what every page's layout needs, rendering, error pages;
//! * `error`: the one policy mapping `tollgate_core::Error` to a status, for
//!   pages (`PageError`, and `page_extractors` for bad path segments and
//!   query parameters) and JSON answers (`Problem`);
//! * `form`: field errors next to form fields;
//! * `headers`: the security headers of every answer (CSP, nosniff, referrer policy);
//! * `redirect`: `LocalPath`, the only kind of place sign-in sends a browser on to;
//! * `request`: bearer tokens and ids read from a request;
//! * `urls`: the server's outward addresses, as app data.
//! * `chart`: server-side SVG charts with their table fallback; `csv`: CSV downloads;
//!   `usage_view`: a usage report as charts and CSV tables, for the portal and the admin UI;
//!   `invoice_pdf`: an issued invoice as an A4 PDF (pure: the document in, bytes out).

pub mod chart;
mod client_ip;
mod csrf;
pub mod csv;
mod error;
mod form;
mod guards;
mod headers;
pub mod invoice_pdf;
mod layout;
mod moment;
mod page;
mod redirect;
mod request;
mod session;
mod text_edge;
mod urls;
pub mod usage_view;

pub use client_ip::{ClientIp, TrustedProxies};
pub use csrf::{CsrfForm, DocumentForm, EmptyForm};
pub use error::{PageError, PageResult, Problem, page_extractors, status_of};
pub use form::{FieldErrors, written_amount};
pub use guards::{AdminUser, SignedInUser};
pub use headers::{SecurityHeaders, security_headers};
pub use layout::{Chrome, Flash};
pub use moment::{Moment, moment, moment_seconds};
pub use page::{ErrorPage, Home, error_pages_lead_back, render, see_other};
pub use redirect::LocalPath;
pub use request::{bearer_token, parse_id};
pub use session::{CookiePolicy, SESSION_COOKIE, Session, session_middleware};
pub use text_edge::refuse_nul_in_address;
pub use urls::{GatewayUrl, PublicUrl};

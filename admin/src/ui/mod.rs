//! The admin UI under `/admin`: HTML pages for provider admins, one module
//! per feature. Every page requires a signed-in admin (`AdminUser`); every
//! change is a CSRF-checked POST.

pub mod accounts;
pub mod apis;
pub mod applications;
pub mod audit;
pub mod billing_settings;
pub mod gateways;
pub mod invoices;
pub mod mocks;
pub mod payments;
pub mod plans;
pub mod revenue;
pub mod routing;
pub mod tokens;
pub mod usage;
pub mod versions;
pub mod webhooks;

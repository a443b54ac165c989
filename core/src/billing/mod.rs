//! Billing (issue 12): invoices per account, period and currency, exact to the
//! minor unit and safe to re-run. See docs/BILLING.md.
//!
//! The domain is pure and unit-tested ([`money`], [`pricing`], [`period`],
//! [`invoice`], [`compute`]); [`run`] loads from and writes to Postgres, [`invoices`]
//! reads and moves issued invoices, [`document`] is an invoice as its account sees it,
//! [`payments`] takes the money (providers, manual payments, retries), [`notices`]
//! tells owners and admins, [`directory`] is the admins' view, [`revenue`] sums issued
//! invoices and [`settings`] holds the provider's billing settings.

pub mod compute;
pub mod demo;
pub mod directory;
pub mod document;
pub mod invoice;
pub mod invoices;
pub mod money;
mod notices;
pub mod payments;
pub mod period;
pub mod pricing;
pub mod revenue;
pub mod run;
pub mod settings;

pub use compute::{BillingMode, LineKind};
pub use invoice::{IllegalTransition, InvoiceAction, InvoiceNumber, InvoiceState};
pub use money::Currency;
pub use payments::{Outcome, PaymentProvider, Payments};
pub use period::Month;
pub use pricing::{PricingMode, Tier};
pub use run::{RunOptions, RunSummary};

//! The invoice life cycle (3scale's states) and invoice numbers.

use std::fmt;

use crate::stored::stored_enum;

use super::period::Month;

stored_enum! {
    /// `open → finalized → pending (issued) → unpaid → paid | failed`, and `cancelled`
    /// from any state but `paid`. From `pending` on an invoice is immutable.
    pub enum InvoiceState as "invoice_state" {
        Open = "open",
        Finalized = "finalized",
        Pending = "pending",
        Unpaid = "unpaid",
        Paid = "paid",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

stored_enum! {
    /// What a caller asks of an invoice.
    pub enum InvoiceAction as "invoice_action" {
        Finalize = "finalize",
        Issue = "issue",
        /// A payment attempt failed; the invoice waits for the next try.
        MarkUnpaid = "mark_unpaid",
        Pay = "pay",
        /// The last retry failed.
        Fail = "fail",
        Cancel = "cancel",
    }
}

/// A transition the life cycle does not allow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an invoice in state {from} cannot {action}")]
pub struct IllegalTransition {
    pub from: InvoiceState,
    pub action: InvoiceAction,
}

impl InvoiceState {
    /// The state after `action`, or why not.
    pub fn apply(self, action: InvoiceAction) -> Result<InvoiceState, IllegalTransition> {
        use InvoiceAction as A;
        use InvoiceState as S;
        let next = match (self, action) {
            (S::Open, A::Finalize) => S::Finalized,
            (S::Finalized, A::Issue) => S::Pending,
            (S::Pending, A::MarkUnpaid) => S::Unpaid,
            (S::Pending | S::Unpaid, A::Pay) => S::Paid,
            (S::Unpaid, A::Fail) => S::Failed,
            (S::Open | S::Finalized | S::Pending | S::Unpaid | S::Failed, A::Cancel) => S::Cancelled,
            _ => return Err(IllegalTransition { from: self, action }),
        };
        Ok(next)
    }

    /// Issued invoices are frozen: their lines and totals never change again.
    pub fn is_issued(self) -> bool {
        !matches!(self, InvoiceState::Open | InvoiceState::Finalized)
    }
}

/// An invoice number, `YYYY-MM-NNNNNNNN`: the billing period's month and the
/// invoice's place in that month's sequence (from 1, no gaps within a month
/// because numbers are taken in the issuing transaction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceNumber(String);

impl InvoiceNumber {
    pub fn new(month: Month, sequence: i64) -> InvoiceNumber {
        InvoiceNumber(format!("{month}-{sequence:08}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InvoiceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_month_and_eight_digits() {
        let nov: Month = "2026-11".parse().unwrap();
        assert_eq!(InvoiceNumber::new(nov, 1).as_str(), "2026-11-00000001");
        assert_eq!(InvoiceNumber::new(nov, 12_345_678).as_str(), "2026-11-12345678");
    }

    #[test]
    fn the_life_cycle_allows_exactly_3scales_transitions() {
        use InvoiceAction as A;
        use InvoiceState as S;
        let allowed = [
            (S::Open, A::Finalize, S::Finalized),
            (S::Finalized, A::Issue, S::Pending),
            (S::Pending, A::MarkUnpaid, S::Unpaid),
            (S::Pending, A::Pay, S::Paid),
            (S::Unpaid, A::Pay, S::Paid),
            (S::Unpaid, A::Fail, S::Failed),
            (S::Open, A::Cancel, S::Cancelled),
            (S::Finalized, A::Cancel, S::Cancelled),
            (S::Pending, A::Cancel, S::Cancelled),
            (S::Unpaid, A::Cancel, S::Cancelled),
            (S::Failed, A::Cancel, S::Cancelled),
        ];
        for from in S::ALL {
            for action in A::ALL {
                let expected = allowed.iter().find(|(f, a, _)| f == from && a == action).map(|(_, _, to)| *to);
                assert_eq!(from.apply(*action).ok(), expected, "{from} {action}");
            }
        }
        let err = S::Paid.apply(A::Cancel).unwrap_err();
        assert_eq!(err.to_string(), "an invoice in state paid cannot cancel");
    }
}

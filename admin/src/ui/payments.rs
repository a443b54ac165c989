//! Recording a payment from the admin invoice page: the "Record a payment" form
//! posts here, and the browser goes back to the invoice with a message saying
//! what happened (the page itself lives with the other invoice pages).

use actix_web::{HttpResponse, web};
use rust_decimal::Decimal;
use tollgate_core::Error;
use tollgate_core::audit::Actor;
use tollgate_core::billing::payments;
use tollgate_core::db::PgPool;
use tollgate_web::{AdminUser, CsrfForm, PageResult, Session, parse_id, see_other};

#[derive(serde::Deserialize)]
pub struct PaymentForm {
    amount: String,
    reference: String,
}

/// `POST /admin/invoices/{id}/payments`: records the payment, or says why not; either
/// way back to the invoice's page. An unknown invoice is the 404 page.
pub async fn record(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<PaymentForm>,
) -> PageResult<HttpResponse> {
    let id = parse_id(&path)?;
    let outcome = match form.amount.trim().parse::<Decimal>() {
        Ok(amount) => payments::record_manual_payment(&pool, id, amount, &form.reference, &Actor::from(&user)).await,
        Err(_) => Err(Error::invalid("amount", "write the amount as a number, e.g. 49.00")),
    };
    match outcome {
        Ok(_) => session.flash("success", "Payment recorded: the invoice is paid.").await?,
        Err(Error::Invalid { field, message }) => {
            // The form's own labels, not the fields' names.
            let label = match field.as_ref() {
                "amount" => "the amount",
                "reference" => "the reference",
                _ => "the payment",
            };
            let text = format!("The payment was not recorded: {label} was refused ({message}). Nothing changed.");
            session.flash("error", &text).await?
        }
        Err(other) => return Err(other.into()),
    }
    Ok(see_other(format!("/admin/invoices/{id}")))
}

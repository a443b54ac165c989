//! Recording a payment from the admin invoice page: the "Record a payment" form posts
//! here. A recorded payment goes back to the invoice with a message; a refused one shows
//! the invoice again (422) with what was typed and why, beside the field.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use tollgate_core::Error;
use tollgate_core::audit::Actor;
use tollgate_core::billing::payments;
use tollgate_core::db::PgPool;
use tollgate_web::{
    AdminUser, Chrome, CsrfForm, FieldErrors, PageResult, Session, parse_id, see_other, written_amount,
};

use super::invoices::{PaymentDraft, invoice_page};

#[derive(serde::Deserialize)]
pub struct PaymentForm {
    amount: String,
    reference: String,
}

/// `POST /admin/invoices/{id}/payments`: records the payment, or says why not. An unknown
/// invoice is the 404 page.
pub async fn record(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<PaymentForm>,
) -> PageResult<HttpResponse> {
    let id = parse_id(&path)?;
    let outcome = match written_amount(&form.amount) {
        Some(amount) => payments::record_manual_payment(&pool, id, amount, &form.reference, &Actor::from(&user)).await,
        None => Err(Error::invalid("amount", "write the amount as a number, e.g. 49.00")),
    };
    match outcome {
        Ok(_) => {
            session.flash("success", "Payment recorded: the invoice is paid.").await?;
            Ok(see_other(format!("/admin/invoices/{id}")))
        }
        Err(Error::Invalid { field, message }) => {
            // The form's own labels, not the fields' names.
            let label = match field.as_ref() {
                "amount" => "the amount",
                "reference" => "the reference",
                _ => "the payment",
            };
            let text = format!("The payment was not recorded: {label} was refused ({message}). Nothing changed.");
            let chrome = Chrome::for_session(&session).await?.with_flash("error", text);
            let mut errors = FieldErrors::new();
            errors.add(field.into_owned(), message);
            let draft = PaymentDraft { amount: Some(form.amount), reference: form.reference, errors };
            invoice_page(&pool, chrome, id, String::new(), draft, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(other) => Err(other.into()),
    }
}

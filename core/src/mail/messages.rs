//! The words of every message Tollgate sends: one function per message,
//! taking what the message needs and returning it ready to queue. Plain
//! text, written here so that mail needs no template engine in core.

use uuid::Uuid;

use super::Outgoing;

fn message(to: &str, subject: String, text: String) -> Outgoing {
    Outgoing { to: to.to_owned(), subject, text }
}

/// The link that finishes a sign-up. The address is not verified yet, so
/// nothing anyone typed (such as the organisation's name) is in the text:
/// the portal cannot be made to mail someone else's words to a stranger.
pub fn verify_email(to: &str, link: &str) -> Outgoing {
    let text = format!(
        "Hello,

Confirm your email address to finish creating your account on the Tollgate developer portal:

{link}

The link works once and expires in 24 hours. If you did not sign up, ignore this message."
    );
    message(to, "Verify your email for Tollgate".to_owned(), text)
}

/// A sign-up with an address that has an account: the mailbox learns it,
/// the sign-up form does not say it.
pub fn already_registered(to: &str, base_url: &str) -> Outgoing {
    let text = format!(
        "Hello,

Someone, perhaps you, tried to sign up to the Tollgate developer portal with this email address, but it already has an account.

Sign in: {base_url}/login
Forgotten your password? {base_url}/password/forgot

If it was not you, you can ignore this message."
    );
    message(to, "You already have a Tollgate account".to_owned(), text)
}

/// The link to choose a new password.
pub fn reset_password(to: &str, link: &str) -> Outgoing {
    let text = format!(
        "Hello,

Choose a new password for your Tollgate account here:

{link}

The link works once and expires in 1 hour. If you did not ask for it, ignore this message: your password stays as it is."
    );
    message(to, "Reset your Tollgate password".to_owned(), text)
}

/// The link that moves an account to this address. Sent to the new
/// address, which is not verified yet, so nothing anyone typed is in it.
pub fn confirm_email_change(to: &str, link: &str) -> Outgoing {
    let text = format!(
        "Hello,

Someone signed in to the Tollgate developer portal asked to use this address for their account. Confirm it is yours:

{link}

The link works once and expires in 24 hours. Until it is followed, the account keeps its old address. If you did not ask for this, ignore this message."
    );
    message(to, "Confirm your new email for Tollgate".to_owned(), text)
}

/// A change to an address that already has an account: the mailbox learns
/// it, the profile page does not say it.
pub fn email_change_taken(to: &str, base_url: &str) -> Outgoing {
    let text = format!(
        "Hello,

Someone signed in to the Tollgate developer portal asked to move their account to this address, but this address already has an account of its own, so nothing changed.

Sign in: {base_url}/login

If it was not you, you can ignore this message."
    );
    message(to, "This address already has a Tollgate account".to_owned(), text)
}

/// To the current address: a change was asked for, and how to stop it.
pub fn email_change_requested(to: &str, new_address: &str, base_url: &str) -> Outgoing {
    let text = format!(
        "Hello,

Someone signed in to your Tollgate account asked to change its email from this address to {new_address}. Nothing changes until the link sent there is followed, within 24 hours.

If it was not you, change your password now (that also cancels the link) and sign out your other sessions: {base_url}/profile"
    );
    message(to, "Your Tollgate email is about to change".to_owned(), text)
}

/// To the old address once the change is done.
pub fn email_changed(to: &str, new_address: &str, base_url: &str) -> Outgoing {
    let text = format!(
        "Hello,

Your Tollgate account now uses {new_address} instead of this address. Sign in with the new address from now on; links mailed here before no longer work.

If you did not make this change, contact the API provider at once: {base_url}"
    );
    message(to, "Your Tollgate email was changed".to_owned(), text)
}

/// The user's own deletion, to the address it had: the last word, and a
/// warning if someone else did it.
pub fn user_deleted(to: &str, base_url: &str) -> Outgoing {
    let text = format!(
        "Hello,

Your Tollgate account for this address was deleted, as you asked. You can no longer sign in with it, and links mailed here before no longer work. Organisations you belonged to stay, with their invoices, for their other members and the API provider.

If you did not ask for this, contact the API provider at once: {base_url}"
    );
    message(to, "Your Tollgate account was deleted".to_owned(), text)
}

/// To a provider admin: an organisation's last member deleted their account, and it has
/// billing history, so its invoices would reach no one.
pub fn organisation_left_empty(to: &str, account: &str, link: &str) -> Outgoing {
    let text = format!(
        "Hello,

The last member of the account \"{account}\" deleted their Tollgate account. The organisation stays, with its invoices, but has no one to mail them to: an invoice still to come for its last applications, and any left unpaid, reach no one.

See the account: {link}
"
    );
    message(to, format!("{account} has no members left"), text)
}

/// An invitation to join an account's team. The invitee's address is not
/// verified, so the text names no organisation (a name anyone may choose):
/// the link's page shows it. The inviter's address is verified.
pub fn invitation(to: &str, inviter: &str, role: &str, link: &str) -> Outgoing {
    let text = format!(
        "Hello,

{inviter} invited you to join their team on the Tollgate developer portal as a {role}.

See the invitation: {link}

The link expires in 7 days. If you do not know the sender, ignore this message."
    );
    message(to, "You are invited to a team on Tollgate".to_owned(), text)
}

/// A provider admin approved or rejected a pending application.
pub fn application_decided(
    to: &str,
    app_name: &str,
    api_name: &str,
    decision: crate::applications::Transition,
    base_url: &str,
    app_id: Uuid,
) -> Outgoing {
    use crate::applications::Transition;
    let next = match decision {
        Transition::Approve => format!("It is live now: open it to get your key at {base_url}/apps/{app_id}"),
        Transition::Reject => "Contact the API provider if you have questions.".to_owned(),
        Transition::Suspend => format!(
            "Its keys are refused (403 application_not_live) until the provider resumes it; nothing else \
             changes. Contact the API provider to learn why. {base_url}/apps/{app_id}"
        ),
        Transition::Resume => format!("It is live again: its keys work at once. {base_url}/apps/{app_id}"),
    };
    let decision = decision.participle();
    let text = format!(
        "Hello,

Your application \"{app_name}\" for {api_name} was {decision} by the API provider.

{next}
"
    );
    message(to, format!("Your application {app_name} was {decision}"), text)
}

/// An API the recipient's applications use is deprecated.
pub fn api_deprecated(to: &str, api_name: &str, sunset: &str, base_url: &str, slug: &str) -> Outgoing {
    let text = format!(
        "Hello,

{api_name}, which your applications use, is deprecated. It stops answering on {sunset} (UTC).

Until then it keeps working; responses carry Deprecation and Sunset headers. Plan your move now: {base_url}/apis/{slug}"
    );
    message(to, format!("{api_name} is deprecated"), text)
}

/// An API the owner's applications use is retired: calls are refused, billing has ended.
pub fn api_retired(to: &str, api_name: &str, base_url: &str) -> Outgoing {
    let text = format!(
        "Hello,

{api_name}, which your applications use, is retired. The gateway now answers its calls with 410 api_retired.

Its plans' fees stop today: your next invoice bills them up to now, with the calls made until now. Your applications and invoices stay in the portal: {base_url}/apps"
    );
    message(to, format!("{api_name} is retired"), text)
}

/// A published version of an API breaks clients.
pub fn breaking_version(
    to: &str,
    api_name: &str,
    number: i32,
    changes: &[String],
    base_url: &str,
    slug: &str,
) -> Outgoing {
    // The first line is the headline (distinct changes, operations affected);
    // then the changes that matter most, breaking first.
    let (headline, top) = changes.split_first().map_or(("", &[][..]), |(h, t)| (h.as_str(), t));
    let list: String = top.iter().map(|line| format!("- {line}\n")).collect();
    let text = format!(
        "Hello,

Version {number} of {api_name}, which your applications use, is published and changes the API in ways that can break clients.

{headline}

The changes that matter most, breaking first:

{list}
The documentation shows the new version: {base_url}/apis/{slug}"
    );
    message(to, format!("Breaking changes in {api_name} (version {number})"), text)
}

/// The words of one usage alert, for mail and notification alike (`usage::alerts` fills them).
pub struct AlertText {
    pub app_name: String,
    pub title: String,
    pub body: String,
    /// The application's usage page, a path on this server.
    pub link: String,
}

/// An application's usage crossed an alert level of one of its limits.
pub fn usage_alert(to: &str, alert: &AlertText, base_url: &str) -> Outgoing {
    let text = format!(
        "Hello,

{body}

See the usage of {app}: {base_url}{link}
",
        body = alert.body,
        app = alert.app_name,
        link = alert.link
    );
    message(to, alert.title.clone(), text)
}

/// What an invoice mail says about its invoice. Numbers and dates only: nothing a
/// developer typed, and no payment details.
pub struct InvoiceFacts {
    pub number: String,
    /// `YYYY-MM`.
    pub period: String,
    /// The total with its currency, e.g. `12.50 USD`.
    pub total: String,
    /// `YYYY-MM-DD` (UTC), when there is one.
    pub due: Option<String>,
    /// The invoice's page, an absolute URL.
    pub link: String,
    /// The total is below zero: the provider owes the account.
    pub credit: bool,
}

/// An invoice was issued to the recipient's account.
pub fn invoice_issued(to: &str, invoice: &InvoiceFacts, paid: bool) -> Outgoing {
    let payment = match (&invoice.due, paid) {
        _ if invoice.credit => {
            "This invoice is a credit in your favour: there is nothing to pay, and the provider refunds it or sets it against a later invoice.".to_owned()
        }
        (_, true) => "There is nothing to pay.".to_owned(),
        (Some(due), false) => format!("Due date: {due}"),
        (None, false) => String::new(),
    };
    let text = format!(
        "Hello,

Invoice {number} for {period} was issued to your account.

Total: {total}
{payment}

See the invoice: {link}
",
        number = invoice.number,
        period = invoice.period,
        total = invoice.total,
        link = invoice.link
    );
    message(to, format!("Invoice {} for {}", invoice.number, invoice.period), text)
}

/// An automatic payment try was declined; `next_try` is the date of the next one, if any.
pub fn payment_failed(to: &str, invoice: &InvoiceFacts, reason: &str, next_try: Option<&str>) -> Outgoing {
    let next = match next_try {
        Some(date) => format!("We will try again on {date}."),
        None => {
            "That was the last try: the invoice is marked failed. Contact the API provider to settle it.".to_owned()
        }
    };
    let text = format!(
        "Hello,

The payment of invoice {number} ({total}) was declined: {reason}.

{next}

See the invoice: {link}
",
        number = invoice.number,
        total = invoice.total,
        link = invoice.link
    );
    message(to, format!("Payment of invoice {} failed", invoice.number), text)
}

/// To a provider admin: an invoice failed its last automatic try.
pub fn invoice_failed_admin(to: &str, invoice: &InvoiceFacts, account_name: &str, reason: &str) -> Outgoing {
    let text = format!(
        "Hello,

Invoice {number} ({total}, {period}) of the account \"{account_name}\" failed: its last automatic payment try was declined ({reason}).

The account's owners were told. Record a payment or cancel the invoice: {link}
",
        number = invoice.number,
        total = invoice.total,
        period = invoice.period,
        link = invoice.link
    );
    message(to, format!("Invoice {} failed", invoice.number), text)
}

/// What a plan change request mail says: names the admins know the application by.
pub struct PlanChangeRequest<'a> {
    pub app_name: &'a str,
    pub account_name: &'a str,
    pub api_name: &'a str,
    pub from_plan: &'a str,
    pub to_plan: &'a str,
    /// Where the admin decides, an absolute URL.
    pub link: &'a str,
}

/// To a provider admin: a new application is on a plan that needs approval.
pub fn application_waits(to: &str, app: &str, account: &str, api: &str, plan: &str, link: &str) -> Outgoing {
    let text = format!(
        "Hello,

The account \"{account}\" registered the application \"{app}\" on the {plan} plan of {api}, which needs approval.

Until you decide, its keys are refused. Approve or reject it: {link}
"
    );
    message(to, format!("{app} waits for approval"), text)
}

/// To a provider admin: a developer asks to move an application to a plan that needs approval.
pub fn plan_change_requested(to: &str, request: &PlanChangeRequest<'_>) -> Outgoing {
    let text = format!(
        "Hello,

The account \"{account}\" asks to move its application \"{app}\" for {api} from the {from} plan to the {to_plan} plan, which needs approval.

Until you decide, the application keeps its plan, limits and prices. Approve or keep the current plan: {link}
",
        account = request.account_name,
        app = request.app_name,
        api = request.api_name,
        from = request.from_plan,
        to_plan = request.to_plan,
        link = request.link
    );
    message(to, format!("Plan change requested for {}", request.app_name), text)
}

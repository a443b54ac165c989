//! The account's team: members, roles and invitations.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::accounts::flows::MailRequest;
use tollgate_core::accounts::teams::{self, InvitationView, Member, MemberRole, PendingInvitation};
use tollgate_core::accounts::{
    AccountId, Email, MailLimits, Password, PasswordHasher, UserId, find_user, switch_organisation as switch,
};
use tollgate_core::db::PgPool;
use tollgate_web::{
    Chrome, ClientIp, CsrfForm, EmptyForm, FieldErrors, PageError, PageResult, PublicUrl, Session, SignedInUser,
    parse_id, render, see_other,
};

use crate::account::account_of;
use crate::message::{TokenQuery, dead_link, plausible};

#[derive(Template)]
#[template(path = "portal/team.html")]
struct TeamPage {
    chrome: Chrome,
    members: Vec<Member>,
    invitations: Vec<PendingInvitation>,
    is_owner: bool,
    me: UserId,
    invite_email: String,
    errors: FieldErrors,
}

async fn page(
    session: &Session,
    pool: &PgPool,
    user: &tollgate_core::accounts::UserSummary,
    errors: FieldErrors,
    invite_email: String,
) -> PageResult<TeamPage> {
    let account = account_of(user)?;
    let members = teams::members(pool, account).await?;
    let invitations = teams::pending_invitations(pool, account).await?;
    let is_owner = members.iter().any(|m| m.user_id == user.id && m.role == MemberRole::Owner);
    Ok(TeamPage {
        chrome: Chrome::for_session(session).await?,
        members,
        invitations,
        is_owner,
        me: user.id,
        invite_email,
        errors,
    })
}

pub async fn show(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
) -> PageResult<HttpResponse> {
    Ok(render(StatusCode::OK, &page(&session, &pool, &user, FieldErrors::new(), String::new()).await?))
}

#[derive(serde::Deserialize)]
pub struct InviteForm {
    email: String,
    role: String,
}

pub async fn invite(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
    public_url: web::Data<PublicUrl>,
    limits: web::Data<MailLimits>,
    ClientIp(client): ClientIp,
    CsrfForm(form): CsrfForm<InviteForm>,
) -> PageResult<HttpResponse> {
    let account = account_of(&user)?;
    let role = form.role.parse::<MemberRole>().map_err(|e| e.at("role"));
    let request = MailRequest { client: &client, limits: &limits };
    let outcome = match (Email::parse(&form.email), role) {
        (Ok(email), Ok(role)) => {
            teams::invite(&pool, &request, account, user.id, &user.email, &email, role, &public_url.0).await
        }
        (Err(err), _) | (_, Err(err)) => Err(err),
    };
    let mut errors = FieldErrors::new();
    match outcome {
        Ok(()) => {
            // Redirected, so that reloading the page does not invite again.
            session.flash("success", &format!("Invitation sent to {}.", form.email.trim())).await?;
            Ok(see_other("/team"))
        }
        Err(tollgate_core::Error::Conflict(message)) => {
            errors.add("email", message);
            Ok(render(StatusCode::FORBIDDEN, &page(&session, &pool, &user, errors, form.email).await?))
        }
        Err(tollgate_core::Error::RateLimited { retry_after }) => {
            let minutes = tollgate_core::minutes(retry_after.as_secs());
            errors.add("email", format!("we emailed this address a moment ago; invite them again in {minutes}"));
            Ok(render(StatusCode::TOO_MANY_REQUESTS, &page(&session, &pool, &user, errors, form.email).await?))
        }
        Err(err) => {
            errors.absorb(err)?;
            Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page(&session, &pool, &user, errors, form.email).await?))
        }
    }
}

async fn after_change(
    session: &Session,
    pool: &PgPool,
    user: &tollgate_core::accounts::UserSummary,
    outcome: tollgate_core::Result<()>,
) -> PageResult<HttpResponse> {
    match outcome {
        Ok(()) => Ok(see_other("/team")),
        Err(tollgate_core::Error::Conflict(message)) => {
            let mut team = page(session, pool, user, FieldErrors::new(), String::new()).await?;
            team.chrome = team.chrome.with_flash("error", message);
            Ok(render(StatusCode::CONFLICT, &team))
        }
        Err(err) => Err(PageError(err)),
    }
}

pub async fn remove(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    let member = UserId(parse_id(&path)?);
    let account = account_of(&user)?;
    let outcome = teams::remove(&pool, account, user.id, &user.email, member).await;
    if outcome.is_ok() && member == user.id {
        // Leaving the account: the session must not keep acting for it. A member of other
        // organisations goes on in one of them, under a new session id; anyone else is signed out.
        let left = user.account_name.clone().unwrap_or_default();
        match find_user(&pool, user.id).await? {
            Some(summary) if summary.account_id.is_some() => {
                let now_in = summary.account_name.clone().unwrap_or_default();
                session.sign_in(summary).await?;
                session.flash("success", &format!("You left {left}. You now work in {now_in}.")).await?;
                return Ok(see_other("/dashboard"));
            }
            _ => {
                session.sign_out().await?;
                return Ok(see_other("/"));
            }
        }
    }
    after_change(&session, &pool, &user, outcome).await
}

/// Withdraws a pending invitation (an owner only): a mistyped address's link stops working.
pub async fn withdraw(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    let invitation = parse_id(&path)?;
    let account = account_of(&user)?;
    let outcome = teams::withdraw(&pool, account, user.id, &user.email, invitation).await;
    after_change(&session, &pool, &user, outcome).await
}

pub async fn make_owner(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    let member = UserId(parse_id(&path)?);
    let outcome = teams::transfer_ownership(&pool, account_of(&user)?, user.id, &user.email, member).await;
    after_change(&session, &pool, &user, outcome).await
}

#[derive(Template)]
#[template(path = "portal/invitation.html")]
struct InvitationPage {
    chrome: Chrome,
    token: String,
    invitation: InvitationView,
    errors: FieldErrors,
}

fn dead_invitation(chrome: Chrome) -> HttpResponse {
    dead_link(
        chrome,
        "This invitation no longer works",
        "It was used, withdrawn or has expired. Ask the account owner for a new one.",
        None,
    )
}

pub async fn invitation(
    session: Session,
    pool: web::Data<PgPool>,
    query: web::Query<TokenQuery>,
) -> PageResult<HttpResponse> {
    let chrome = Chrome::for_session(&session).await?;
    let token = query.into_inner().token();
    if !plausible(&token) {
        return Ok(dead_invitation(chrome));
    }
    match teams::invitation(&pool, &token).await? {
        Some(invitation) => {
            Ok(render(StatusCode::OK, &InvitationPage { chrome, token, invitation, errors: FieldErrors::new() }))
        }
        None => Ok(dead_invitation(chrome)),
    }
}

#[derive(serde::Deserialize)]
pub struct AcceptForm {
    token: String,
    password: Option<String>,
}

pub async fn accept(
    session: Session,
    pool: web::Data<PgPool>,
    hasher: web::Data<PasswordHasher>,
    CsrfForm(form): CsrfForm<AcceptForm>,
) -> PageResult<HttpResponse> {
    let chrome = Chrome::for_session(&session).await?;
    let Some(invitation) = teams::invitation(&pool, &form.token).await? else {
        return Ok(dead_invitation(chrome));
    };
    let signed_in = session.user();
    let password = match (&signed_in, form.password.as_deref()) {
        (None, Some(raw)) => match Password::parse(raw) {
            Ok(p) => Some(p),
            Err(err) => {
                let mut errors = FieldErrors::new();
                errors.absorb(err)?;
                return Ok(render(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &InvitationPage { chrome, token: form.token, invitation, errors },
                ));
            }
        },
        _ => None,
    };
    let who = signed_in.as_ref().map(|u| (u.id, u.email.as_str()));
    match teams::accept(&pool, &hasher, &form.token, who, password.as_ref()).await {
        Ok(user) => {
            // Joining changes what the user may see: continue under a new session id.
            if let Some(summary) = find_user(&pool, user).await? {
                session.sign_in(summary).await?;
            }
            let text = format!("You joined {} and now work in it.", invitation.organisation);
            session.flash("success", &text).await?;
            Ok(see_other("/team"))
        }
        Err(tollgate_core::Error::Conflict(message)) => {
            let mut errors = FieldErrors::new();
            errors.add("password", message);
            Ok(render(StatusCode::CONFLICT, &InvitationPage { chrome, token: form.token, invitation, errors }))
        }
        Err(err) => Err(PageError(err)),
    }
}

#[derive(serde::Deserialize)]
pub struct SwitchForm {
    account: String,
}

/// Works in another organisation the user belongs to; any other id is not found.
/// It lands on the dashboard, since the page it came from may belong to the old one.
pub async fn switch_organisation(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
    CsrfForm(form): CsrfForm<SwitchForm>,
) -> PageResult<HttpResponse> {
    let account = AccountId(parse_id(&form.account)?);
    let name = switch(&pool, user.id, account).await?;
    session.flash("success", &format!("You now work in {name}.")).await?;
    Ok(see_other("/dashboard"))
}

#[derive(Template)]
#[template(path = "portal/organisation_new.html")]
struct NewOrganisationPage {
    chrome: Chrome,
    name: String,
    errors: FieldErrors,
}

#[derive(serde::Deserialize)]
pub struct NewOrganisationForm {
    name: String,
}

/// The form to create an organisation: for a user who belongs to none (left or removed
/// from every one), or who works for several.
pub async fn new_organisation_form(SignedInUser(user): SignedInUser, session: Session) -> PageResult<HttpResponse> {
    developer_only(&user)?;
    let chrome = Chrome::for_session(&session).await?;
    Ok(render(StatusCode::OK, &NewOrganisationPage { chrome, name: String::new(), errors: FieldErrors::new() }))
}

/// Creates the organisation with the user as its owner; they work in it from now on.
pub async fn create_organisation(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
    CsrfForm(form): CsrfForm<NewOrganisationForm>,
) -> PageResult<HttpResponse> {
    developer_only(&user)?;
    match teams::create_organisation(&pool, user.id, &user.email, &form.name).await {
        Ok(_) => {
            session.flash("success", &format!("You created {} and now work in it.", form.name.trim())).await?;
            Ok(see_other("/dashboard"))
        }
        Err(err) => {
            let mut errors = FieldErrors::new();
            errors.absorb(err)?;
            let chrome = Chrome::for_session(&session).await?;
            Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &NewOrganisationPage { chrome, name: form.name, errors }))
        }
    }
}

/// Provider admins belong to the provider's account, not to developer organisations.
fn developer_only(user: &tollgate_core::accounts::UserSummary) -> PageResult<()> {
    if user.is_admin { Err(PageError(tollgate_core::Error::NotFound)) } else { Ok(()) }
}

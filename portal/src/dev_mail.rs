//! `tollgate dev`'s mail viewer: every message the server queued, newest
//! first, and one message with its links clickable, so a new user verifies
//! an address without leaving the browser. Mounted by `tollgate dev` only
//! (`tollgate serve` answers 404 there). It reads the outbox table, so it
//! shows the same mail whether delivery is SMTP or `.eml` files.
//!
//! Open to anyone who reaches it, without sign-in: the person reading it is
//! usually the one who just signed up (not an admin), and a `tollgate dev`
//! server already hands out its demo admin's password in its banner, so it
//! must never face a network anyone else can reach.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use time::{OffsetDateTime, UtcOffset};
use tollgate_core::db::PgPool;
use tollgate_core::mail::outbox::{self, DeliveryState, MailSummary};
use tollgate_web::{Chrome, PageResult, Session, parse_id, render};

/// The most messages the list shows.
const LIST_LIMIT: i64 = 500;

/// Present in the app's data when the viewer is mounted, so pages that say
/// "check your email" can point to it.
pub struct DevMailViewer;

/// Mounts `/dev/mail` and `/dev/mail/{id}` inside the session scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::Data::new(DevMailViewer))
        .service(web::resource("/dev/mail").route(web::get().to(list)))
        .service(web::resource("/dev/mail/{id}").route(web::get().to(show)));
}

/// A time as the pages show it, with its machine-readable form.
struct When {
    iso: String,
    text: String,
}

impl When {
    fn of(at: OffsetDateTime) -> When {
        let at = at.to_offset(UtcOffset::UTC);
        let iso = at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let text = format!("{} {:02}:{:02}:{:02} UTC", at.date(), at.hour(), at.minute(), at.second());
        When { iso, text }
    }
}

struct Row {
    id: String,
    to: String,
    subject: String,
    when: When,
    state: &'static str,
}

impl Row {
    fn of(mail: &MailSummary) -> Row {
        Row {
            id: mail.id.to_string(),
            to: mail.to.clone(),
            subject: mail.subject.clone(),
            when: When::of(mail.created_at),
            state: mail.state.label(),
        }
    }
}

#[derive(Template)]
#[template(path = "dev/mail.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    total: i64,
    /// More messages exist than the list shows.
    truncated: bool,
}

pub async fn list(session: Session, pool: web::Data<PgPool>) -> PageResult<HttpResponse> {
    let (mail, total) = outbox::recent(&pool, LIST_LIMIT).await?;
    let rows: Vec<Row> = mail.iter().map(Row::of).collect();
    let truncated = total > rows.len() as i64;
    Ok(render(StatusCode::OK, &ListPage { chrome: Chrome::without_forms(&session), rows, total, truncated }))
}

/// A run of a mail's text: plain, or a URL to show as a link.
struct Segment {
    text: String,
    link: bool,
}

#[derive(Template)]
#[template(path = "dev/mail_one.html")]
struct MailPage {
    chrome: Chrome,
    row: Row,
    /// When it was sent, or why it was not yet.
    delivery: String,
    body: Vec<Segment>,
}

pub async fn show(session: Session, pool: web::Data<PgPool>, path: web::Path<String>) -> PageResult<HttpResponse> {
    let mail = outbox::find(&pool, parse_id(&path)?).await?.ok_or(tollgate_core::Error::NotFound)?;
    let delivery = match &mail.summary.state {
        DeliveryState::Sent { at } => format!("Delivered {}", When::of(*at).text),
        DeliveryState::Queued => "Waiting to be delivered".to_owned(),
        DeliveryState::Failing { attempts, error } => {
            format!("Not delivered yet: {attempts} attempt(s) failed, the last with {error}")
        }
    };
    let page = MailPage {
        chrome: Chrome::without_forms(&session),
        row: Row::of(&mail.summary),
        delivery,
        body: segments(&mail.text),
    };
    Ok(render(StatusCode::OK, &page))
}

/// Splits text at `http://` and `https://` URLs. A URL ends at whitespace or
/// a character that cannot be in one; closing punctuation after it stays text.
fn segments(text: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = next_url(rest) {
        let (before, from) = rest.split_at(start);
        let end = from.find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'')).unwrap_or(from.len());
        let url = from[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']']);
        if !before.is_empty() {
            out.push(Segment { text: before.to_owned(), link: false });
        }
        out.push(Segment { text: url.to_owned(), link: true });
        rest = &from[url.len()..];
    }
    if !rest.is_empty() {
        out.push(Segment { text: rest.to_owned(), link: false });
    }
    out
}

fn next_url(text: &str) -> Option<usize> {
    let http = text.find("http://");
    let https = text.find("https://");
    match (http, https) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

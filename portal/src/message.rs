//! Short pages of a heading and a sentence or two: answers that must read
//! the same whatever happened ("check your email"), and links from emails
//! that no longer work, with the token such links carry.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::accounts::MailLimits;
use tollgate_web::{Chrome, render};

use crate::dev_mail::DevMailViewer;

#[derive(Template)]
#[template(path = "portal/message.html")]
struct MessagePage<'a> {
    chrome: Chrome,
    title: &'a str,
    text: &'a str,
    link: Option<(&'a str, &'a str)>,
    /// `tollgate dev` mounts a mail viewer; say where the mail can be read.
    dev_mail: bool,
}

/// The answer once a mail may have been sent; `link` is (href, label).
/// `dev_mail` is the app's mail viewer, mounted by `tollgate dev` only.
pub(crate) fn check_your_email(
    chrome: Chrome,
    text: &str,
    link: Option<(&str, &str)>,
    dev_mail: Option<web::Data<DevMailViewer>>,
) -> HttpResponse {
    render(StatusCode::OK, &MessagePage { chrome, title: "Check your email", text, link, dev_mail: dev_mail.is_some() })
}

/// The sentence every "check your email" answer ends with, so a person who
/// asks again at once knows why no second mail comes.
pub(crate) fn one_mail_per(limits: &MailLimits) -> String {
    let seconds = limits.address_cooldown.as_secs();
    match seconds {
        0 => String::new(),
        60 => "We send at most one message to an address every minute.".to_owned(),
        s if s % 60 == 0 => format!("We send at most one message to an address every {} minutes.", s / 60),
        s => format!("We send at most one message to an address every {s} seconds."),
    }
}

/// The outcome of following an emailed link, with where to go next.
pub(crate) fn outcome(
    status: StatusCode,
    chrome: Chrome,
    title: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> HttpResponse {
    render(status, &MessagePage { chrome, title, text, link, dev_mail: false })
}

/// An emailed link that was used, has expired or never existed.
pub(crate) fn dead_link(chrome: Chrome, title: &str, text: &str, link: Option<(&str, &str)>) -> HttpResponse {
    render(StatusCode::GONE, &MessagePage { chrome, title, text, link, dev_mail: false })
}

/// The query string of an emailed link.
#[derive(serde::Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

impl TokenQuery {
    pub(crate) fn token(self) -> String {
        self.token.unwrap_or_default()
    }
}

/// Whether a token could be one of ours; longer ones are not even looked up.
pub(crate) fn plausible(token: &str) -> bool {
    !token.is_empty() && token.len() <= 128
}

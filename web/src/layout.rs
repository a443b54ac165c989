//! What every page's layout needs: who is signed in, the token for the
//! sign-out form, and a one-line message.

use tollgate_core::accounts::UserSummary;
use tollgate_core::notifications;

use crate::session::Session;

/// A one-line message shown at the top of the next page.
#[derive(Debug, Clone)]
pub struct Flash {
    pub kind: &'static str,
    pub text: String,
}

/// The layout's data, handed to every page template.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub user: Option<UserSummary>,
    pub csrf_token: String,
    pub flash: Option<Flash>,
    /// Unread notifications of a signed-in developer, for the count in the header.
    pub unread: i64,
}

impl Chrome {
    pub async fn for_session(session: &Session) -> tollgate_core::Result<Chrome> {
        let user = session.user();
        let unread = match &user {
            Some(u) if !u.is_admin => notifications::unread_count(session.pool(), u.id.0).await?,
            _ => 0,
        };
        // A message a redirecting handler kept for this page.
        let flash = session
            .take_flash()
            .await?
            .map(|(kind, text)| Flash { kind: if kind == "error" { "error" } else { "success" }, text });
        Ok(Chrome { user, csrf_token: session.csrf_token().await?, flash, unread })
    }

    /// For pages without forms (the public catalog): an anonymous visitor
    /// gets no session, so crawlers do not fill the sessions table.
    pub fn without_forms(session: &Session) -> Chrome {
        Chrome {
            user: session.user(),
            csrf_token: session.existing_csrf_token().unwrap_or_default(),
            flash: None,
            unread: 0,
        }
    }

    pub fn with_flash(mut self, kind: &'static str, text: impl Into<String>) -> Chrome {
        self.flash = Some(Flash { kind, text: text.into() });
        self
    }

    /// The organisation the signed-in user acts for, for a form's `acting_for` field: a form
    /// whose effect depends on it is refused (409) once another tab has switched it.
    pub fn acting_for(&self) -> String {
        self.user.as_ref().and_then(|u| u.account_id).map(|account| account.0.to_string()).unwrap_or_default()
    }

    pub fn is_admin(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.is_admin)
    }
}

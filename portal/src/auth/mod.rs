//! Signing up, in and out: email and password, external identity providers,
//! verification and password reset.

pub mod external;
pub mod login;
pub mod logout;
pub mod password;
pub mod signup;
pub mod verify;

use askama::Template;
use tollgate_web::Chrome;

/// A short page with a heading and a sentence or two, for answers that
/// must read the same whatever happened (e.g. "check your email").
#[derive(Template)]
#[template(path = "portal/message.html")]
pub struct MessagePage {
    pub chrome: Chrome,
    pub title: String,
    pub text: String,
    pub link: Option<(String, String)>,
}

//! `tollgate dev`'s mail viewer: every queued mail, newest first, one mail
//! with its links clickable; `tollgate serve` has no such pages.

use sqlx::PgPool;
use tollgate_core::mail::{self, Outgoing};

use crate::helpers::{TestApp, spawn_app, spawn_dev_app};
use crate::portal::sign_up;

/// The ids of the list's rows, top to bottom, with their recipients.
fn rows(html: &str) -> Vec<(String, String)> {
    html.split("<tr data-mail-id=\"")
        .skip(1)
        .map(|row| {
            let id = row[..row.find('"').unwrap()].to_owned();
            let cell = &row[row.find("<td>").unwrap() + 4..];
            (id, cell[..cell.find("</td>").unwrap()].to_owned())
        })
        .collect()
}

async fn page(app: &TestApp, path: &str) -> (u16, String, String) {
    let res = app.get(path).await;
    let status = res.status().as_u16();
    let csp = res.headers().get("content-security-policy").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, csp, res.text().await.unwrap())
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_viewer_lists_every_mail_newest_first_and_shows_its_links(pool: PgPool) {
    let app = spawn_dev_app(pool.clone()).await;
    let (status, _, html) = page(&app, "/dev/mail").await;
    assert_eq!(status, 200);
    assert!(html.contains("No mail yet"), "{html}");

    let first = sign_up(&app, "first@example.com", "correct horse battery").await;
    assert_eq!(first.status(), 200);
    // The "check your email" answer points to the viewer in dev mode.
    assert!(first.text().await.unwrap().contains("<a href=\"/dev/mail\">development mail viewer</a>"));
    assert_eq!(sign_up(&app, "second@example.com", "correct horse battery").await.status(), 200);

    let (status, csp, html) = page(&app, "/dev/mail").await;
    assert_eq!(status, 200);
    assert!(csp.contains("default-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    // Scripts only from files (the page's local times), no inline code.
    let scripts = html.matches("<script").count();
    assert_eq!(scripts, html.matches("<script src=\"/static/js/").count(), "no inline script under the page policy");
    assert!(!html.contains("style="), "no inline style under the page policy");
    let listed = rows(&html);
    let recipients: Vec<&str> = listed.iter().map(|(_, to)| to.as_str()).collect();
    assert_eq!(recipients, ["second@example.com", "first@example.com"], "newest first");
    assert!(html.contains("Verify your email"), "subjects are listed");

    // One mail: its verification link is a link, and following it works.
    let (status, csp, html) = page(&app, &format!("/dev/mail/{}", listed[1].0)).await;
    assert_eq!(status, 200);
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let marker = format!("<a href=\"{}/verify?token=", app.base);
    let start = html.find(&marker).unwrap_or_else(|| panic!("no verification link in {html}")) + "<a href=\"".len();
    let href = &html[start..start + html[start..].find('"').unwrap()];
    let verify = app.client.get(href).send().await.unwrap();
    assert_eq!(verify.status(), 200);
    assert!(verify.text().await.unwrap().contains("Verify email"));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_mail_is_shown_escaped_with_only_its_urls_as_links(pool: PgPool) {
    let app = spawn_dev_app(pool.clone()).await;
    let mut conn = pool.acquire().await.unwrap();
    let text = "Hi <b>you</b>,\nsee https://example.com/a?b=1&c=2. Or (http://example.com/x).\njavascript:alert(1)";
    mail::enqueue(&mut conn, &Outgoing { to: "who@example.com".into(), subject: "A <test>".into(), text: text.into() })
        .await
        .unwrap();
    let (_, _, list) = page(&app, "/dev/mail").await;
    let id = rows(&list)[0].0.clone();
    assert!(list.contains("A &#60;test&#62;") || list.contains("A &lt;test&gt;"), "{list}");
    let (status, _, html) = page(&app, &format!("/dev/mail/{id}")).await;
    assert_eq!(status, 200);
    assert!(!html.contains("<b>you</b>"), "the text is escaped");
    assert!(
        html.contains("<a href=\"https://example.com/a?b=1&#38;c=2\">")
            || html.contains("<a href=\"https://example.com/a?b=1&amp;c=2\">"),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"http://example.com/x\">http://example.com/x</a>)."),
        "closing punctuation stays text: {html}"
    );
    assert!(!html.contains("href=\"javascript"), "only http(s) URLs become links");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_unknown_or_malformed_mail_id_is_not_found(pool: PgPool) {
    let app = spawn_dev_app(pool).await;
    for path in ["/dev/mail/0190a0d2-0000-7000-8000-000000000000", "/dev/mail/not-an-id"] {
        let (status, _, html) = page(&app, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(html.contains("<h1"), "a readable page: {html}");
    }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn serve_has_no_mail_viewer(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let res = sign_up(&app, "someone@example.com", "correct horse battery").await;
    assert_eq!(res.status(), 200);
    assert!(!res.text().await.unwrap().contains("/dev/mail"), "no pointer to a viewer that is not there");
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM outbox_emails").fetch_one(&pool).await.unwrap();
    for path in ["/dev/mail".to_owned(), format!("/dev/mail/{id}")] {
        let (status, _, html) = page(&app, &path).await;
        assert_eq!(status, 404, "{path}");
        assert!(!html.contains("someone@example.com"), "{path}");
    }
}

//! A signed-in user moves their account to another email address: the
//! password is asked for, the new address proves itself by a link, the old
//! one is told, and whether the new one has an account is said only to it.

use sqlx::PgPool;

use crate::helpers::{TestApp, csrf_from, spawn_app};
use crate::portal::{last_mail, link_token, location, verified_developer};

const PASSWORD: &str = "correct horse battery";

async fn ask_for(app: &TestApp, new_email: &str, password: &str) -> reqwest::Response {
    let token = app.csrf_token("/profile").await;
    app.post_form("/profile/email", &[("csrf_token", &token), ("new_email", new_email), ("email_password", password)])
        .await
}

async fn email_of(pool: &PgPool, user_email_now: &str) -> Option<String> {
    sqlx::query_scalar("SELECT email::text FROM users WHERE email = $1::citext")
        .bind(user_email_now)
        .fetch_optional(pool)
        .await
        .unwrap()
}

async fn mails_to(pool: &PgPool, address: &str) -> Vec<(String, String)> {
    sqlx::query_as("SELECT subject, body_text FROM outbox_emails WHERE to_address = $1::citext ORDER BY created_at, id")
        .bind(address)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Ages every mail request past the two-minute cooldown per address.
async fn cooldowns_pass(pool: &PgPool) {
    sqlx::query("UPDATE mail_requests SET created_at = created_at - interval '3 minutes'").execute(pool).await.unwrap();
}

/// Follows a change-of-email link: the confirm page, then its button.
async fn follow(app: &TestApp, token: &str) -> reqwest::Response {
    let page = app.get(&format!("/profile/email/confirm?token={token}")).await;
    assert_eq!(page.status(), 200, "a live link shows its page");
    let html = page.text().await.unwrap();
    app.post_form("/profile/email/confirm", &[("csrf_token", &csrf_from(&html)), ("token", token)]).await
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_developer_moves_their_account_to_a_new_address_by_the_link_sent_there(pool: PgPool) {
    let app = spawn_app(pool).await;
    verified_developer(&app, "ada@old.example").await;

    let res = ask_for(&app, "Ada@New.example", PASSWORD).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("We sent a link to Ada@New.example"), "{html}");
    assert!(html.contains("Your email stays ada@old.example"), "{html}");

    // Nothing changed yet; the old address is told, with the new one named.
    assert!(email_of(&app.pool, "ada@old.example").await.is_some());
    let (subject, body) = last_mail(&app.pool, "ada@old.example").await;
    assert!(subject.contains("about to change"), "{subject}");
    assert!(body.contains("Ada@New.example"), "{body}");
    let (subject, body) = last_mail(&app.pool, "ada@new.example").await;
    assert!(subject.contains("Confirm your new email"), "{subject}");
    let token = link_token(&body, "/profile/email/confirm");

    // Opening the link in another browser, signed out, changes nothing by itself.
    let stranger = app.another_browser();
    let page = stranger.get(&format!("/profile/email/confirm?token={token}")).await.text().await.unwrap();
    assert!(page.contains("Use Ada@New.example"), "{page}");
    assert!(email_of(&app.pool, "ada@old.example").await.is_some());

    let res = follow(&stranger, &token).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Your account uses Ada@New.example now"));
    assert_eq!(email_of(&app.pool, "ada@new.example").await.as_deref(), Some("Ada@New.example"));
    assert!(email_of(&app.pool, "ada@old.example").await.is_none());
    let (subject, body) = last_mail(&app.pool, "ada@old.example").await;
    assert!(subject.contains("was changed"), "{subject}");
    assert!(body.contains("Ada@New.example"), "{body}");

    // Sign-in follows the address; the open session shows it.
    assert!(app.get("/profile").await.text().await.unwrap().contains("Ada@New.example"));
    assert_eq!(stranger.sign_in("ada@old.example", PASSWORD).await.status(), 401);
    assert_eq!(location(&stranger.sign_in("ada@new.example", PASSWORD).await), "/dashboard");

    // The link works once.
    assert_eq!(app.get(&format!("/profile/email/confirm?token={token}")).await.status(), 410);
    let html = app.get("/profile").await.text().await.unwrap();
    let again = app.post_form("/profile/email/confirm", &[("csrf_token", &csrf_from(&html)), ("token", &token)]).await;
    assert_eq!(again.status(), 410);

    // The provider can see who changed what.
    let (before, after): (serde_json::Value, serde_json::Value) =
        sqlx::query_as("SELECT before, after FROM audit_log WHERE action = 'user.email_changed'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(before["email"], "ada@old.example");
    assert_eq!(after["email"], "Ada@New.example");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn links_mailed_to_the_old_address_stop_working_after_the_change(pool: PgPool) {
    let app = spawn_app(pool).await;
    verified_developer(&app, "ada@old.example").await;
    cooldowns_pass(&app.pool).await;
    let token = app.csrf_token("/password/forgot").await;
    let res = app.post_form("/password/forgot", &[("csrf_token", &token), ("email", "ada@old.example")]).await;
    assert_eq!(res.status(), 200);
    let (_, body) = last_mail(&app.pool, "ada@old.example").await;
    let reset = link_token(&body, "/password/reset");
    assert_eq!(app.get(&format!("/password/reset?token={reset}")).await.status(), 200, "live before the change");

    ask_for(&app, "ada@new.example", PASSWORD).await;
    let (_, body) = last_mail(&app.pool, "ada@new.example").await;
    assert_eq!(follow(&app, &link_token(&body, "/profile/email/confirm")).await.status(), 200);

    assert_eq!(app.get(&format!("/password/reset?token={reset}")).await.status(), 410);
}

/// Someone who knew the password asked for a change to their own address; the owner does
/// what the notice says, and the link in the intruder's mailbox stops working.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_new_password_cancels_a_pending_change_of_address(pool: PgPool) {
    let app = spawn_app(pool).await;
    verified_developer(&app, "ada@old.example").await;
    let intruder = app.another_browser();
    assert_eq!(location(&intruder.sign_in("ada@old.example", PASSWORD).await), "/dashboard");

    // Changed on the profile page.
    let token = intruder.csrf_token("/profile").await;
    let form = [("csrf_token", token.as_str()), ("new_email", "eve@evil.example"), ("email_password", PASSWORD)];
    assert_eq!(intruder.post_form("/profile/email", &form).await.status(), 200);
    let (_, notice) = last_mail(&app.pool, "ada@old.example").await;
    assert!(notice.contains("cancels the link"), "{notice}");
    let (_, body) = last_mail(&app.pool, "eve@evil.example").await;
    let change = link_token(&body, "/profile/email/confirm");
    let token = app.csrf_token("/profile").await;
    let form =
        [("csrf_token", token.as_str()), ("current_password", PASSWORD), ("new_password", "a brand new passphrase")];
    assert_eq!(app.post_form("/profile/password", &form).await.status(), 200);
    assert_eq!(intruder.get(&format!("/profile/email/confirm?token={change}")).await.status(), 410);
    assert!(email_of(&app.pool, "ada@old.example").await.is_some());

    // Reset by a link mailed to the account's address.
    cooldowns_pass(&app.pool).await;
    let token = intruder.csrf_token("/profile").await;
    let form = [
        ("csrf_token", token.as_str()),
        ("new_email", "eve@evil.example"),
        ("email_password", "a brand new passphrase"),
    ];
    assert_eq!(intruder.post_form("/profile/email", &form).await.status(), 200);
    let (_, body) = last_mail(&app.pool, "eve@evil.example").await;
    let change = link_token(&body, "/profile/email/confirm");
    assert_eq!(intruder.get(&format!("/profile/email/confirm?token={change}")).await.status(), 200, "a live link");
    let owner = app.another_browser();
    let token = owner.csrf_token("/password/forgot").await;
    owner.post_form("/password/forgot", &[("csrf_token", &token), ("email", "ada@old.example")]).await;
    let (_, body) = last_mail(&app.pool, "ada@old.example").await;
    let reset = link_token(&body, "/password/reset");
    let html = owner.get(&format!("/password/reset?token={reset}")).await.text().await.unwrap();
    let csrf = csrf_from(&html);
    let form = [("csrf_token", csrf.as_str()), ("token", reset.as_str()), ("password", "a third passphrase")];
    assert_eq!(location(&owner.post_form("/password/reset", &form).await), "/login?reset=1");
    let page = intruder.get(&format!("/profile/email/confirm?token={change}")).await;
    assert_eq!(page.status(), 410);
    assert!(email_of(&app.pool, "ada@old.example").await.is_some());
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_change_needs_the_password_and_a_real_new_address(pool: PgPool) {
    let app = spawn_app(pool).await;
    verified_developer(&app, "ada@old.example").await;
    let before = mails_to(&app.pool, "ada@old.example").await.len();

    let cases = [
        ("ada@new.example", "wrong password", "email_password", "not your current password"),
        ("ada@new.example", "", "email_password", "not your current password"),
        ("ADA@old.example", PASSWORD, "new_email", "already your email"),
        ("not-an-address", PASSWORD, "new_email", "needs an @"),
        ("", PASSWORD, "new_email", "enter an email address"),
    ];
    for (new_email, password, field, says) in cases {
        let res = ask_for(&app, new_email, password).await;
        assert_eq!(res.status(), 422, "{new_email:?} / {password:?}");
        let html = res.text().await.unwrap();
        assert!(html.contains(&format!("id=\"{field}-error\"")), "{new_email:?}: {html}");
        assert!(html.contains(says), "{new_email:?}: wants {says:?}");
        // What was typed comes back; the password does not.
        assert!(html.contains(&format!("value=\"{new_email}\"")), "{new_email:?}");
        assert!(password.is_empty() || !html.contains(password), "the password is not echoed");
    }
    assert!(mails_to(&app.pool, "ada@new.example").await.is_empty());
    assert_eq!(mails_to(&app.pool, "ada@old.example").await.len(), before, "no notice for a refused change");

    // Signed out, there is no profile to change.
    let stranger = app.another_browser();
    let token = stranger.csrf_token("/login").await;
    let form = [("csrf_token", token.as_str()), ("new_email", "x@example.com"), ("email_password", PASSWORD)];
    let res = stranger.post_form("/profile/email", &form).await;
    assert_eq!(res.status(), 303);
    assert!(location(&res).starts_with("/login"), "{}", location(&res));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_address_with_an_account_is_told_only_to_its_mailbox(pool: PgPool) {
    let app = spawn_app(pool).await;
    verified_developer(&app, "grace@example.com").await;
    let grace_mails = mails_to(&app.pool, "grace@example.com").await.len();
    let ada = app.another_browser();
    verified_developer(&ada, "ada@old.example").await;
    cooldowns_pass(&app.pool).await;

    // The same page as for a free address.
    let res = ask_for(&ada, "Grace@Example.com", PASSWORD).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("We sent a link to Grace@Example.com"));

    let to_grace = mails_to(&app.pool, "grace@example.com").await;
    assert_eq!(to_grace.len(), grace_mails + 1);
    let (subject, body) = to_grace.last().unwrap();
    assert!(subject.contains("already has a Tollgate account"), "{subject}");
    assert!(!body.contains("/profile/email/confirm"), "no link that could move Ada onto Grace's address");
    assert!(email_of(&app.pool, "ada@old.example").await.is_some());
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_address_taken_while_the_link_waited_is_refused_and_nothing_changes(pool: PgPool) {
    let app = spawn_app(pool).await;
    verified_developer(&app, "ada@old.example").await;
    ask_for(&app, "ada@new.example", PASSWORD).await;
    let (_, body) = last_mail(&app.pool, "ada@new.example").await;
    let token = link_token(&body, "/profile/email/confirm");

    // Someone signs up with the address before Ada follows the link.
    let other = app.another_browser();
    assert_eq!(crate::portal::sign_up(&other, "ada@new.example", PASSWORD).await.status(), 200);

    let res = follow(&app, &token).await;
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("has an account of its own"));
    assert!(email_of(&app.pool, "ada@old.example").await.is_some());
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn only_the_newest_link_works_and_asking_again_at_once_is_throttled(pool: PgPool) {
    let app = spawn_app(pool).await;
    verified_developer(&app, "ada@old.example").await;
    assert_eq!(ask_for(&app, "first@example.com", PASSWORD).await.status(), 200);
    let (_, body) = last_mail(&app.pool, "first@example.com").await;
    let first = link_token(&body, "/profile/email/confirm");

    // The same address again within its cooldown: said beside the field, no second mail.
    let res = ask_for(&app, "first@example.com", PASSWORD).await;
    assert_eq!(res.status(), 429);
    assert!(res.text().await.unwrap().contains("we emailed this address a moment ago"));
    assert_eq!(mails_to(&app.pool, "first@example.com").await.len(), 1);

    // A second address replaces the first request.
    assert_eq!(ask_for(&app, "second@example.com", PASSWORD).await.status(), 200);
    assert_eq!(app.get(&format!("/profile/email/confirm?token={first}")).await.status(), 410);
    let (_, body) = last_mail(&app.pool, "second@example.com").await;
    assert_eq!(follow(&app, &link_token(&body, "/profile/email/confirm")).await.status(), 200);
    assert!(email_of(&app.pool, "second@example.com").await.is_some());
}

/// A provider's sign-in linked by the old address ends with the move: whoever holds that
/// identity at the provider (a company's directory, after the person left) must not keep
/// signing in to the account the address left.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_move_ends_the_provider_sign_ins_linked_by_the_old_address(pool: PgPool) {
    let app = spawn_app(pool).await;
    verified_developer(&app, "ada@corp.example").await;
    sqlx::query(
        "INSERT INTO identity_links (provider, subject, user_id) SELECT 'corp', 'ada-1', id FROM users WHERE email = 'ada@corp.example'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(ask_for(&app, "ada@home.example", PASSWORD).await.status(), 200);
    let (_, body) = last_mail(&app.pool, "ada@home.example").await;
    assert_eq!(follow(&app, &link_token(&body, "/profile/email/confirm")).await.status(), 200);
    assert_eq!(email_of(&app.pool, "ada@home.example").await.as_deref(), Some("ada@home.example"));
    let links: i64 = sqlx::query_scalar("SELECT count(*) FROM identity_links").fetch_one(&app.pool).await.unwrap();
    assert_eq!(links, 0);
}

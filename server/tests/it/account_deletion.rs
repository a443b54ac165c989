//! A developer deletes their own account: the password is asked for, an
//! organisation is never left ownerless while others depend on it, and
//! what goes (sign-in, sessions, team places) and what stays (the
//! organisation, its invoices, the audit log) is as the page says.

use sqlx::PgPool;
use tollgate::cli::dev::{DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, seed};

use crate::helpers::{TestApp, csrf_from, spawn_app};
use crate::portal::{
    last_mail, link_token, location, register_app, sign_up, verified_developer, verified_developer_of,
};

const PASSWORD: &str = "correct horse battery";

async fn delete_with(app: &TestApp, password: &str) -> reqwest::Response {
    let html = app.get("/profile/delete").await.text().await.unwrap();
    app.post_form("/profile/delete", &[("csrf_token", &csrf_from(&html)), ("current_password", password)]).await
}

async fn user_exists(pool: &PgPool, email: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE email = $1::citext)")
        .bind(email)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Ages every mail request past the two-minute cooldown per address.
async fn cooldowns_pass(pool: &PgPool) {
    sqlx::query("UPDATE mail_requests SET created_at = created_at - interval '3 minutes'").execute(pool).await.unwrap();
}

/// Notifications that an organisation was left with no members.
async fn empty_notices(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM notifications WHERE kind = 'organisation_empty'")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The sentences of the page's "before you can delete it" list.
fn blockers(html: &str) -> Vec<String> {
    let Some(start) = html.find("data-testid=\"blockers\"") else { return Vec::new() };
    let list = &html[start..html[start..].find("</ul>").unwrap() + start];
    list.split("<li>").skip(1).map(|item| item.split("</li>").next().unwrap().to_owned()).collect()
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_developer_deletes_their_account_with_the_password_and_is_signed_out_everywhere(pool: PgPool) {
    let app = spawn_app(pool).await;
    verified_developer(&app, "ada@example.com").await;
    let elsewhere = app.another_browser();
    assert_eq!(location(&elsewhere.sign_in("ada@example.com", PASSWORD).await), "/dashboard");

    let profile = app.get("/profile").await.text().await.unwrap();
    assert!(profile.contains("href=\"/profile/delete\""), "the profile leads to it");
    let page = app.get("/profile/delete").await.text().await.unwrap();
    assert!(page.contains("Delete my account") && blockers(&page).is_empty(), "{page}");

    // Grace invites Ada to her team; the link must end with Ada's account.
    let grace = app.another_browser();
    verified_developer_of(&grace, "Grace Co", "grace@example.com").await;
    let html = grace.get("/team").await.text().await.unwrap();
    let invite = [("csrf_token", csrf_from(&html)), ("email", "ada@example.com".into()), ("role", "member".into())];
    let invite: Vec<(&str, &str)> = invite.iter().map(|(k, v)| (*k, v.as_str())).collect();
    cooldowns_pass(&app.pool).await;
    assert_eq!(grace.post_form("/team/invite", &invite).await.status(), 303);
    let (_, body) = last_mail(&app.pool, "ada@example.com").await;
    let invitation = format!("/invitations/accept?token={}", link_token(&body, "/invitations/accept"));
    assert_eq!(app.get(&invitation).await.status(), 200, "live before");

    // The wrong password, or none, deletes nothing.
    for password in ["wrong password", ""] {
        let res = delete_with(&app, password).await;
        assert_eq!(res.status(), 422, "{password:?}");
        let html = res.text().await.unwrap();
        assert!(html.contains("id=\"current_password-error\"") && html.contains("not your current password"));
        assert!(html.contains("<a href=\"#current_password\">Current password: "), "listed at the top: {html}");
        assert!(user_exists(&app.pool, "ada@example.com").await);
    }

    let res = delete_with(&app, PASSWORD).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("Your account is deleted") && html.contains("ada@example.com"), "{html}");
    assert!(!user_exists(&app.pool, "ada@example.com").await);

    // Both browsers are signed out, and the password opens nothing.
    for browser in [&app, &elsewhere] {
        let res = browser.get("/profile").await;
        assert_eq!(res.status(), 303);
        assert!(location(&res).starts_with("/login"), "{}", location(&res));
    }
    assert_eq!(elsewhere.sign_in("ada@example.com", PASSWORD).await.status(), 401);

    // The address is told; the organisation stays, with no one in it; the audit log keeps who.
    let (subject, body) = last_mail(&app.pool, "ada@example.com").await;
    assert!(subject.contains("was deleted"), "{subject}");
    assert!(body.contains("If you did not ask for this"), "{body}");
    let members: i64 = sqlx::query_scalar(
        "SELECT count(m.user_id) FROM accounts a LEFT JOIN memberships m ON m.account_id = a.id WHERE a.name = 'Acme Labs'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(members, 0);
    let organisations: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts WHERE name = 'Acme Labs'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(organisations, 1, "the organisation stays");
    assert_eq!(app.get(&invitation).await.status(), 410, "the invitation to the address ended with it");
    // Acme Labs never had an application or an invoice: no admin needs to hear of it.
    assert_eq!(empty_notices(&app.pool).await, 0);
    let (actor, before): (String, serde_json::Value) =
        sqlx::query_as("SELECT actor_label, before FROM audit_log WHERE action = 'user.deleted'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((actor.as_str(), before["email"].as_str()), ("ada@example.com", Some("ada@example.com")));
    assert_eq!(before["organisations"][0]["name"], "Acme Labs");

    // The address is free for a new account.
    cooldowns_pass(&app.pool).await;
    let again = app.another_browser();
    assert_eq!(sign_up(&again, "ada@example.com", PASSWORD).await.status(), 200);
    let (_, body) = last_mail(&app.pool, "ada@example.com").await;
    link_token(&body, "/verify");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_last_owner_hands_the_team_on_and_deletes_the_applications_first(pool: PgPool) {
    seed(&pool).await.unwrap();
    let alice = spawn_app(pool).await;
    verified_developer_of(&alice, "Partner Co", "alice@example.com").await;
    let (app_path, _) = register_app(&alice, "Partner app").await;

    // Bob joins Partner Co as a member, by invitation.
    let html = alice.get("/team").await.text().await.unwrap();
    let invite = [("csrf_token", csrf_from(&html)), ("email", "bob@example.com".into()), ("role", "member".into())];
    let invite: Vec<(&str, &str)> = invite.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(alice.post_form("/team/invite", &invite).await.status(), 303);
    let (_, body) = last_mail(&alice.pool, "bob@example.com").await;
    let token = link_token(&body, "/invitations/accept");
    let bob = alice.another_browser();
    let page = bob.get(&format!("/invitations/accept?token={token}")).await.text().await.unwrap();
    let form = [("csrf_token", csrf_from(&page)), ("token", token), ("password", "bob's passphrase".into())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(location(&bob.post_form("/invitations/accept", &form).await), "/team");

    // And Carol is invited, not yet joined.
    let html = alice.get("/team").await.text().await.unwrap();
    let invite = [("csrf_token", csrf_from(&html)), ("email", "carol@example.com".into()), ("role", "member".into())];
    let invite: Vec<(&str, &str)> = invite.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(alice.post_form("/team/invite", &invite).await.status(), 303);

    // Alice is Partner Co's only owner: the page says what to do first and offers no form.
    let page = alice.get("/profile/delete").await.text().await.unwrap();
    let listed = blockers(&page);
    assert_eq!(listed.len(), 3, "{page}");
    assert!(listed[0].contains("last owner of Partner Co, which has 1 other member"), "{listed:?}");
    assert!(listed[1].contains("Partner Co has 1 pending invitation"), "{listed:?}");
    assert!(listed[2].contains("Partner Co still has 1 application"), "{listed:?}");
    assert!(!page.contains("name=\"current_password\""), "no form while something blocks it");
    let res =
        alice.post_form("/profile/delete", &[("csrf_token", &csrf_from(&page)), ("current_password", PASSWORD)]).await;
    assert_eq!(res.status(), 409);
    assert_eq!(blockers(&res.text().await.unwrap()).len(), 3);
    assert!(user_exists(&alice.pool, "alice@example.com").await);

    // An invitation that has expired waits for no one.
    sqlx::query("UPDATE invitations SET expires_at = now() - interval '1 day' WHERE email = 'carol@example.com'")
        .execute(&alice.pool)
        .await
        .unwrap();

    // A member is not blocked: Bob goes, and Partner Co keeps Alice.
    assert!(blockers(&bob.get("/profile/delete").await.text().await.unwrap()).is_empty());
    assert_eq!(delete_with(&bob, "bob's passphrase").await.status(), 200);
    let listed = blockers(&alice.get("/profile/delete").await.text().await.unwrap());
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].contains("still has 1 application"));

    // Once the application is deleted, so can Alice be.
    let html = alice.get(&format!("{app_path}/delete")).await.text().await.unwrap();
    let res = alice.post_form(&format!("{app_path}/delete"), &[("csrf_token", &csrf_from(&html))]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(delete_with(&alice, PASSWORD).await.status(), 200);
    assert!(!user_exists(&alice.pool, "alice@example.com").await);
    let partner_co: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts WHERE name = 'Partner Co'")
        .fetch_one(&alice.pool)
        .await
        .unwrap();
    assert_eq!(partner_co, 1, "the organisation stays for its invoices");

    // It had an application, so it has a bill to come: the provider's admins hear that it
    // now goes to no one.
    assert_eq!(empty_notices(&alice.pool).await, 1);
    let (subject, body) = last_mail(&alice.pool, DEMO_ADMIN_EMAIL).await;
    assert_eq!(subject, "Partner Co has no members left");
    assert!(body.contains("/admin/accounts"), "{body}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn wrong_passwords_here_pause_as_failed_sign_ins_do(pool: PgPool) {
    let app = spawn_app(pool).await;
    verified_developer(&app, "ada@example.com").await;
    for _ in 0..5 {
        let res = delete_with(&app, "a guess").await;
        assert_eq!(res.status(), 422);
        assert!(res.text().await.unwrap().contains("not your current password"));
    }
    // The sixth try waits, even with the right password, like a sixth sign-in.
    let res = delete_with(&app, PASSWORD).await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("too many wrong passwords"));
    assert!(user_exists(&app.pool, "ada@example.com").await);
    let token = app.csrf_token("/profile").await;
    let form = [("csrf_token", token.as_str()), ("current_password", PASSWORD), ("new_password", "another passphrase")];
    let res = app.post_form("/profile/password", &form).await;
    let page = res.text().await.unwrap();
    assert!(page.contains("too many wrong passwords"), "the password change waits too");
    // The page has two forms: the summary stands above the one that was sent, once.
    assert_eq!(page.matches("data-testid=\"error-summary\"").count(), 1, "{page}");
    let summary = page.split("data-testid=\"error-summary\"").nth(1).unwrap().split("</div>").next().unwrap();
    assert!(summary.contains("<a href=\"#current_password\">Current password: "), "{summary}");

    // Once the pause is over, the password works again.
    sqlx::query("UPDATE sign_in_failures SET locked_until = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(delete_with(&app, PASSWORD).await.status(), 200);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_administrator_is_not_deleted_from_the_portal_and_a_stranger_has_nothing_to_delete(pool: PgPool) {
    seed(&pool).await.unwrap();
    let admin = spawn_app(pool).await;
    assert_eq!(location(&admin.sign_in(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await), "/admin");
    let page = admin.get("/profile/delete").await.text().await.unwrap();
    assert!(blockers(&page)[0].contains("administrator"), "{page}");
    let res = admin
        .post_form("/profile/delete", &[("csrf_token", &csrf_from(&page)), ("current_password", DEMO_ADMIN_PASSWORD)])
        .await;
    assert_eq!(res.status(), 409);
    assert!(user_exists(&admin.pool, DEMO_ADMIN_EMAIL).await);

    let stranger = admin.another_browser();
    let res = stranger.get("/profile/delete").await;
    assert_eq!(res.status(), 303);
    assert!(location(&res).starts_with("/login"));
    let token = stranger.csrf_token("/login").await;
    let res = stranger.post_form("/profile/delete", &[("csrf_token", &token), ("current_password", PASSWORD)]).await;
    assert_eq!(res.status(), 303);
    assert!(location(&res).starts_with("/login"));
}

//! The mail throttles of the public flows: one mail per address per
//! cooldown, a budget of requests per client address, the same answers for
//! known and unknown addresses, and no words of an organisation's choosing
//! in mail to an unverified address.

use sqlx::PgPool;
use tollgate::cli::dev::{DEMO_DEVELOPER_EMAIL, seed};

use crate::helpers::{TestApp, client, csrf_from, spawn_app, spawn_app_with, without_csrf};
use crate::portal::{last_mail, verified_developer};

async fn mails_to(pool: &PgPool, address: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox_emails WHERE to_address = $1")
        .bind(address)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Posts a one-field email form (forgotten password, resend) as a browser at `ip`.
async fn ask(app: &TestApp, path: &str, email: &str, ip: &str) -> reqwest::Response {
    let token = app.csrf_token(path).await;
    let form = [("csrf_token", token.as_str()), ("email", email)];
    app.client.post(app.url(path)).header("x-forwarded-for", ip).form(&form).send().await.unwrap()
}

async fn sign_up_from(app: &TestApp, organisation: &str, email: &str, ip: &str) -> reqwest::Response {
    let token = app.csrf_token("/signup").await;
    let form = [
        ("csrf_token", token.as_str()),
        ("organisation", organisation),
        ("email", email),
        ("password", "correct horse battery"),
    ];
    app.client.post(app.url("/signup")).header("x-forwarded-for", ip).form(&form).send().await.unwrap()
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_address_gets_one_mail_per_cooldown_whoever_asks(pool: PgPool) {
    seed(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    let mut answers = Vec::new();
    for email in [DEMO_DEVELOPER_EMAIL, "nobody@example.com"] {
        for _ in 0..4 {
            let res = ask(&app, "/password/forgot", email, "").await;
            assert_eq!(res.status(), 200);
            answers.push(without_csrf(&res.text().await.unwrap()));
        }
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "every answer is the same");
    assert!(answers[0].contains("at most one message to an address every 2 minutes"), "{}", answers[0]);
    assert_eq!(mails_to(&app.pool, DEMO_DEVELOPER_EMAIL).await, 1, "four requests, one mail");
    // Sign-up with the known address and new verification links stay quiet too.
    assert_eq!(sign_up_from(&app, "Acme", DEMO_DEVELOPER_EMAIL, "").await.status(), 200);
    assert_eq!(mails_to(&app.pool, DEMO_DEVELOPER_EMAIL).await, 1);

    // Once the cooldown is over, the next request mails again.
    sqlx::query("UPDATE mail_requests SET created_at = created_at - interval '3 minutes'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(ask(&app, "/password/forgot", DEMO_DEVELOPER_EMAIL, "").await.status(), 200);
    assert_eq!(mails_to(&app.pool, DEMO_DEVELOPER_EMAIL).await, 2);

    // A new sign-up gets its link; asking again at once sends nothing more.
    assert_eq!(sign_up_from(&app, "Fresh", "fresh@example.com", "").await.status(), 200);
    for _ in 0..3 {
        assert_eq!(ask(&app, "/verify/resend", "fresh@example.com", "").await.status(), 200);
    }
    assert_eq!(mails_to(&app.pool, "fresh@example.com").await, 1);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn simultaneous_requests_for_one_address_send_one_mail(pool: PgPool) {
    seed(&pool).await.unwrap();
    let app = spawn_app_with(pool, &[("TOLLGATE_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let app = TestApp { base: app.base.clone(), pool: app.pool.clone(), client: client() };
        tasks.push(tokio::spawn(async move {
            ask(&app, "/password/forgot", DEMO_DEVELOPER_EMAIL, &format!("203.0.113.{i}")).await.status()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(mails_to(&app.pool, DEMO_DEVELOPER_EMAIL).await, 1);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn each_client_address_has_a_budget_of_mail_requests(pool: PgPool) {
    seed(&pool).await.unwrap();
    let app = spawn_app_with(
        pool,
        &[("TOLLGATE_TRUSTED_PROXIES", "127.0.0.1"), ("TOLLGATE_MAIL_REQUESTS_PER_CLIENT_HOUR", "3")],
    )
    .await;
    let here = "203.0.113.10";
    assert_eq!(ask(&app, "/password/forgot", "a@example.com", here).await.status(), 200);
    assert_eq!(ask(&app, "/verify/resend", "b@example.com", here).await.status(), 200);
    assert_eq!(sign_up_from(&app, "Acme", "c@example.com", here).await.status(), 200);
    // The budget is spent: known and unknown addresses, every flow, the same answer.
    let mut answers = Vec::new();
    for email in [DEMO_DEVELOPER_EMAIL, "nobody@example.com"] {
        let res = ask(&app, "/password/forgot", email, here).await;
        assert_eq!(res.status(), 429, "{email}");
        let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=3600).contains(&retry), "{retry}");
        answers.push(without_csrf(&res.text().await.unwrap()));
    }
    assert_eq!(answers[0], answers[1]);
    assert!(answers[0].contains("Too many requests"), "{}", answers[0]);
    assert_eq!(sign_up_from(&app, "Acme", "d@example.com", here).await.status(), 429);
    assert_eq!(mails_to(&app.pool, DEMO_DEVELOPER_EMAIL).await, 0);
    let accounts: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = 'd@example.com'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(accounts, 0, "a refused sign-up creates nothing");
    // Another client is not affected; a client cannot pick its address past the proxy.
    assert_eq!(ask(&app, "/password/forgot", DEMO_DEVELOPER_EMAIL, "198.51.100.20").await.status(), 200);
    assert_eq!(ask(&app, "/password/forgot", "e@example.com", &format!("198.51.100.21, {here}")).await.status(), 429);
    // Its IPv6 /64 is one client.
    for i in 1..=3 {
        assert_eq!(
            ask(&app, "/password/forgot", &format!("v6-{i}@example.com"), &format!("2001:db8::{i}")).await.status(),
            200
        );
    }
    assert_eq!(ask(&app, "/password/forgot", "v6-4@example.com", "2001:db8::ff").await.status(), 429);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn organisation_names_are_one_line_and_never_mailed_to_unverified_addresses(pool: PgPool) {
    let app = spawn_app(pool).await;
    for bad in ["Acme\nCall +1 555 0100 now", "Acme\r\nBcc: x@example.com", "Acme\tLabs", "Acme\u{2028}Labs"] {
        let res = sign_up_from(&app, bad, "multi@example.com", "").await;
        assert_eq!(res.status(), 422, "{bad:?}");
        assert!(res.text().await.unwrap().contains("one line"), "{bad:?}");
    }
    let spam = "Cheap pills at pills.example";
    assert_eq!(sign_up_from(&app, spam, "victim@example.com", "").await.status(), 200);
    let (_, body) = last_mail(&app.pool, "victim@example.com").await;
    assert!(!body.contains("pills"), "the organisation's name is not mailed to an unverified address: {body}");

    // Invitations go to unverified addresses too.
    verified_developer(&app, "owner@example.com").await;
    let html = app.get("/team").await.text().await.unwrap();
    let invite = |token: String| {
        let app = &app;
        async move {
            app.post_form(
                "/team/invite",
                &[("csrf_token", &token), ("email", "invitee@example.com"), ("role", "member")],
            )
            .await
        }
    };
    let res = invite(csrf_from(&html)).await;
    assert_eq!(res.status(), 303);
    let (subject, body) = last_mail(&app.pool, "invitee@example.com").await;
    assert!(!subject.contains("Acme") && !body.contains("Acme"), "{subject}\n{body}");
    assert!(body.contains("owner@example.com"), "the verified inviter is named: {body}");
    // The page the link opens names the organisation.
    let token = crate::portal::link_token(&body, "/invitations/accept");
    let page = client().get(app.url(&format!("/invitations/accept?token={token}"))).send().await.unwrap();
    assert!(page.text().await.unwrap().contains("Join Acme Labs"));
    // Inviting the same address again at once is refused, next to the field.
    let res = invite(csrf_from(&html)).await;
    assert_eq!(res.status(), 429);
    assert!(res.text().await.unwrap().contains("emailed this address a moment ago"));
    assert_eq!(mails_to(&app.pool, "invitee@example.com").await, 1);
}

//! Signing in and out through the portal: sessions, cookies, redirects, CSRF
//! and throttling.

use sqlx::PgPool;
use tollgate::cli::dev::{DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD, seed};

use crate::helpers::{TestApp, client, csrf_from, session_cookie, spawn_app};

async fn seeded_app(pool: PgPool) -> TestApp {
    seed(&pool).await.expect("seed");
    spawn_app(pool).await
}

fn location(res: &reqwest::Response) -> String {
    res.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_demo_admin_signs_in_and_sees_the_admin_page(pool: PgPool) {
    let app = seeded_app(pool).await;
    let res = app.sign_in(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/admin");
    let page = app.get("/admin").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Weather API"), "{html}");
    assert!(html.contains(DEMO_ADMIN_EMAIL));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_demo_developer_signs_in_to_the_dashboard_but_not_the_admin(pool: PgPool) {
    let app = seeded_app(pool).await;
    let res = app.sign_in(DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await;
    assert_eq!(location(&res), "/dashboard");
    let html = app.get("/dashboard").await.text().await.unwrap();
    assert!(html.contains("Demo Developer Co"), "{html}");
    assert_eq!(app.get("/admin").await.status(), 403);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn anonymous_visitors_are_sent_to_sign_in_and_back(pool: PgPool) {
    let app = seeded_app(pool).await;
    let res = app.get("/admin").await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login?next=%2Fadmin");
    let html = app.get("/login?next=%2Fadmin").await.text().await.unwrap();
    let token = csrf_from(&html);
    let res = app
        .post_form(
            "/login",
            &[
                ("csrf_token", &token),
                ("email", DEMO_ADMIN_EMAIL),
                ("password", DEMO_ADMIN_PASSWORD),
                ("next", "/admin"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/admin");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn sign_in_never_redirects_to_another_site(pool: PgPool) {
    let app = seeded_app(pool).await;
    let hostile = [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "/\t/evil.example",
        "/\r\nLocation: https://evil.example/",
        "/\n/evil.example",
        "/\r/evil.example",
        "/%09/evil.example",
        "/%0a/evil.example",
        "/%5Cevil.example",
        "/%2F%2Fevil.example",
        "/%2f/evil.example",
        " /evil",
        "javascript:alert(1)",
    ];
    // A NUL is refused before sign-in looks at anything (it cannot be stored): 400 naming
    // the field, in the form as in the page's address, and no redirect at all.
    let token = app.csrf_token("/login").await;
    let form = [
        ("csrf_token", token.as_str()),
        ("email", DEMO_DEVELOPER_EMAIL),
        ("password", DEMO_DEVELOPER_PASSWORD),
        ("next", "/\u{0}"),
    ];
    let res = app.post_form("/login", &form).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("“next” contains a NUL character"));
    assert_eq!(app.get("/login?next=%2F%00").await.status(), 400);
    for next in hostile {
        let token = app.csrf_token("/login").await;
        let res = app
            .post_form(
                "/login",
                &[
                    ("csrf_token", &token),
                    ("email", DEMO_DEVELOPER_EMAIL),
                    ("password", DEMO_DEVELOPER_PASSWORD),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(res.status(), 303, "next={next:?}");
        assert_eq!(location(&res), "/dashboard", "next={next:?}");
    }
    // The same values in the sign-in page's address never answer 500, and
    // the form does not carry them on.
    for next in hostile {
        let encoded: String = next
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        let res = app.get(&format!("/login?next={encoded}")).await;
        assert_eq!(res.status(), 200, "next={next:?}");
        let html = res.text().await.unwrap();
        assert!(html.contains("name=\"next\" value=\"\""), "next={next:?} was kept");
    }
    // A path of this site, with its query, is followed.
    let token = app.csrf_token("/login").await;
    let res = app
        .post_form(
            "/login",
            &[
                ("csrf_token", &token),
                ("email", DEMO_DEVELOPER_EMAIL),
                ("password", DEMO_DEVELOPER_PASSWORD),
                ("next", "/apps?tab=keys"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/apps?tab=keys");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn session_cookies_are_http_only_lax_and_replaced_at_sign_in(pool: PgPool) {
    let app = seeded_app(pool).await;
    let page = app.get("/login").await;
    let anonymous = session_cookie(&page).expect("the sign-in form starts a session");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(anonymous.contains(flag), "{flag} missing: {anonymous}");
    }
    assert!(!anonymous.contains("Secure"), "plain HTTP cannot carry Secure cookies: {anonymous}");
    let token = csrf_from(&page.text().await.unwrap());
    let res = app
        .post_form("/login", &[("csrf_token", &token), ("email", DEMO_ADMIN_EMAIL), ("password", DEMO_ADMIN_PASSWORD)])
        .await;
    let signed_in = session_cookie(&res).expect("sign-in issues a new session cookie");
    let id = |c: &str| c.split(';').next().unwrap().to_owned();
    assert_ne!(id(&anonymous), id(&signed_in), "the session id must change at sign-in");
    assert!(signed_in.contains("HttpOnly") && signed_in.contains("SameSite=Lax"));
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions").fetch_one(&app.pool).await.unwrap();
    assert_eq!(stored, 1, "the anonymous session is destroyed at sign-in");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn forms_without_the_sessions_csrf_token_are_refused(pool: PgPool) {
    let app = seeded_app(pool).await;
    let _ = app.csrf_token("/login").await;
    let creds = [("email", DEMO_ADMIN_EMAIL), ("password", DEMO_ADMIN_PASSWORD)];
    let res = app.post_form("/login", &creds).await;
    assert_eq!(res.status(), 403);
    let mut forged = vec![("csrf_token", "forged-token-forged-token-forged-token")];
    forged.extend(creds);
    assert_eq!(app.post_form("/login", &forged).await.status(), 403);
    // A fresh browser with no session at all is refused as well.
    let stranger = client();
    let res = stranger.post(app.url("/login")).form(&forged).send().await.unwrap();
    assert_eq!(res.status(), 403);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn cross_site_posts_are_refused_even_with_a_token(pool: PgPool) {
    let app = seeded_app(pool).await;
    let token = app.csrf_token("/login").await;
    let res = app
        .client
        .post(app.url("/login"))
        .header("origin", "https://evil.example")
        .form(&[("csrf_token", token.as_str()), ("email", DEMO_ADMIN_EMAIL), ("password", DEMO_ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn known_and_unknown_emails_get_the_same_answer(pool: PgPool) {
    let app = seeded_app(pool).await;
    let known = app.sign_in(DEMO_DEVELOPER_EMAIL, "wrong password here").await;
    let known_status = known.status();
    let known_body = known.text().await.unwrap();
    let unknown = app.sign_in("nobody@example.com", "wrong password here").await;
    assert_eq!(known_status, unknown.status());
    assert_eq!(known_status, 401);
    let unknown_body = unknown.text().await.unwrap();
    let strip = |html: &str| {
        html.replace(&csrf_from(html), "TOKEN")
            .replace("nobody@example.com", "EMAIL")
            .replace(DEMO_DEVELOPER_EMAIL, "EMAIL")
    };
    assert_eq!(strip(&known_body), strip(&unknown_body));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn repeated_failures_pause_sign_in_for_that_account(pool: PgPool) {
    let app = seeded_app(pool).await;
    for _ in 0..5 {
        assert_eq!(app.sign_in(DEMO_DEVELOPER_EMAIL, "not the password").await.status(), 401);
    }
    // Now even the right password is refused until the pause ends.
    let res = app.sign_in(DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await;
    assert_eq!(res.status(), 401);
    let locked: bool = sqlx::query_scalar(
        "SELECT f.locked_until > now() FROM sign_in_failures f JOIN users u ON u.id = f.user_id WHERE u.email = $1",
    )
    .bind(DEMO_DEVELOPER_EMAIL)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(locked);
    // Other accounts are unaffected.
    assert_eq!(app.sign_in(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await.status(), 303);
}

/// Signs in as a browser at `ip` would, through a proxy at 127.0.0.1.
async fn sign_in_from(app: &TestApp, ip: &str, email: &str, password: &str) -> reqwest::Response {
    let token = app.csrf_token("/login").await;
    let form = [("csrf_token", token.as_str()), ("email", email), ("password", password)];
    app.client.post(app.url("/login")).header("x-forwarded-for", ip).form(&form).send().await.unwrap()
}

fn browser(app: &TestApp) -> TestApp {
    TestApp { base: app.base.clone(), pool: app.pool.clone(), client: client() }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_stranger_cannot_lock_a_user_out(pool: PgPool) {
    seed(&pool).await.unwrap();
    let app = crate::helpers::spawn_app_with(pool, &[("TOLLGATE_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let stranger = browser(&app);
    for _ in 0..8 {
        let res = sign_in_from(&stranger, "203.0.113.66", DEMO_DEVELOPER_EMAIL, "guessing guessing").await;
        assert_eq!(res.status(), 401);
    }
    // The stranger's address is paused, even with the right password...
    let res = sign_in_from(&stranger, "203.0.113.66", DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await;
    assert_eq!(res.status(), 401, "the guesser's address is paused");
    // ...and so is its whole IPv6 /64, for an IPv6 guesser.
    for i in 0..6 {
        let ip = format!("2001:db8:5:6::{i:x}");
        assert_eq!(sign_in_from(&stranger, &ip, DEMO_DEVELOPER_EMAIL, "guessing guessing").await.status(), 401);
    }
    let res = sign_in_from(&stranger, "2001:db8:5:6::ffff", DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await;
    assert_eq!(res.status(), 401, "one /64 is one client");
    // The user, at their own address, signs in.
    let user = browser(&app);
    let res = sign_in_from(&user, "198.51.100.7", DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await;
    assert_eq!(location(&res), "/dashboard", "the user is not locked out");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn one_address_spraying_a_password_over_many_accounts_runs_out_of_attempts(pool: PgPool) {
    use tollgate_core::accounts::throttle::CLIENT_FAILURE_BUDGET;
    seed(&pool).await.unwrap();
    let app = crate::helpers::spawn_app_with(pool, &[("TOLLGATE_TRUSTED_PROXIES", "127.0.0.1")]).await;
    // A colleague on the same network signed in there before, and signed out.
    let colleague = browser(&app);
    let res = sign_in_from(&colleague, "203.0.113.77", DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await;
    assert_eq!(location(&res), "/dashboard");
    let html = colleague.get("/dashboard").await.text().await.unwrap();
    colleague.post_form("/logout", &[("csrf_token", &csrf_from(&html))]).await;
    let sprayer = browser(&app);
    // One guess per account, known or not: no account's own pause starts.
    for i in 0..CLIENT_FAILURE_BUDGET {
        let email = if i == 0 { DEMO_DEVELOPER_EMAIL.to_owned() } else { format!("person{i}@example.com") };
        let res = sign_in_from(&sprayer, "203.0.113.77", &email, "Summer2026!").await;
        assert_eq!(res.status(), 401, "attempt {i}");
    }
    // The hour's budget is spent: the next attempt waits, even with a right password, and the
    // answer says why and when (it depends on the address only, so it reveals no account).
    let res = sign_in_from(&sprayer, "203.0.113.77", DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await;
    assert_eq!(res.status(), 429);
    let retry: i64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((3000..=3600).contains(&retry), "about an hour: {retry}");
    assert!(res.text().await.unwrap().contains("Too many failed sign-ins came from your network"));
    // Everyone else signs in.
    let user = browser(&app);
    let res = sign_in_from(&user, "198.51.100.7", DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await;
    assert_eq!(location(&res), "/dashboard");

    // The colleague's browser is known to their user: the network's spent budget does not
    // hold it (OWASP's device cookies), but only for that user.
    let res = sign_in_from(&colleague, "203.0.113.77", DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await;
    assert_eq!(location(&res), "/dashboard");
    let html = colleague.get("/dashboard").await.text().await.unwrap();
    colleague.post_form("/logout", &[("csrf_token", &csrf_from(&html))]).await;
    let res = sign_in_from(&colleague, "203.0.113.77", DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await;
    assert_eq!(res.status(), 429, "another user's browser");
    // A user new to the network resets their password: the browser that followed the link
    // signs in from there, as the pause page says it would.
    let newcomer = browser(&app);
    let token = newcomer.csrf_token("/password/forgot").await;
    newcomer.post_form("/password/forgot", &[("csrf_token", &token), ("email", DEMO_ADMIN_EMAIL)]).await;
    let (_, body) = crate::portal::last_mail(&app.pool, DEMO_ADMIN_EMAIL).await;
    let reset = crate::portal::link_token(&body, "/password/reset");
    let html = newcomer.get(&format!("/password/reset?token={reset}")).await.text().await.unwrap();
    let csrf = csrf_from(&html);
    let form = [("csrf_token", csrf.as_str()), ("token", reset.as_str()), ("password", "a brand new passphrase")];
    assert_eq!(location(&newcomer.post_form("/password/reset", &form).await), "/login?reset=1");
    let res = sign_in_from(&newcomer, "203.0.113.77", DEMO_ADMIN_EMAIL, "a brand new passphrase").await;
    assert_eq!(location(&res), "/admin");
    // A stranger's browser at that network still waits.
    let res = sign_in_from(&browser(&app), "203.0.113.77", DEMO_ADMIN_EMAIL, "a brand new passphrase").await;
    assert_eq!(res.status(), 429);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn without_trusted_proxies_a_client_cannot_choose_its_address(pool: PgPool) {
    let app = seeded_app(pool).await;
    for i in 0..6 {
        let res = sign_in_from(&app, &format!("203.0.113.{i}"), DEMO_DEVELOPER_EMAIL, "guessing guessing").await;
        assert_eq!(res.status(), 401);
    }
    let res = sign_in_from(&app, "198.51.100.99", DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await;
    assert_eq!(res.status(), 401, "X-Forwarded-For from an untrusted peer is ignored: still paused");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn every_sign_in_answer_costs_the_same_argon2_work(pool: PgPool) {
    seed(&pool).await.unwrap();
    let (app, hasher) = crate::helpers::spawn_app_counting(pool, &[]).await;
    // The argon2 computations one sign-in attempt costs.
    async fn work(
        app: &TestApp,
        hasher: &tollgate_core::accounts::PasswordHasher,
        email: &str,
        password: &str,
    ) -> (u16, u64) {
        let token = app.csrf_token("/login").await;
        let before = hasher.computations();
        let res = app.post_form("/login", &[("csrf_token", &token), ("email", email), ("password", password)]).await;
        (res.status().as_u16(), hasher.computations() - before)
    }
    assert_eq!(work(&app, &hasher, "nobody@example.com", "a wrong password").await, (401, 1), "unknown email");
    for _ in 0..6 {
        assert_eq!(work(&app, &hasher, DEMO_DEVELOPER_EMAIL, "a wrong password").await, (401, 1), "wrong password");
    }
    // Paused now: the answer must not come back faster.
    assert_eq!(work(&app, &hasher, DEMO_DEVELOPER_EMAIL, "a wrong password").await, (401, 1), "paused, wrong");
    assert_eq!(work(&app, &hasher, DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await, (401, 1), "paused, right");
    assert_eq!(work(&app, &hasher, DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await, (303, 1), "right password");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn sign_out_ends_the_session_on_the_server(pool: PgPool) {
    let app = seeded_app(pool).await;
    let res = app.sign_in(DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await;
    let cookie = session_cookie(&res).unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let html = app.get("/dashboard").await.text().await.unwrap();
    let res = app.post_form("/logout", &[("csrf_token", &csrf_from(&html))]).await;
    assert_eq!(res.status(), 303);
    // Replaying the old cookie from another client no longer works.
    let replay = crate::helpers::plain_client();
    let res = replay.get(app.url("/dashboard")).header("cookie", cookie).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert!(location(&res).starts_with("/login"));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn passwords_are_stored_only_as_argon2id_hashes(pool: PgPool) {
    let app = seeded_app(pool).await;
    let hashes: Vec<String> = sqlx::query_scalar("SELECT password_hash FROM users").fetch_all(&app.pool).await.unwrap();
    assert_eq!(hashes.len(), 2);
    for hash in hashes {
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(!hash.contains(DEMO_ADMIN_PASSWORD) && !hash.contains(DEMO_DEVELOPER_PASSWORD));
    }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn session_cookies_are_secure_when_the_public_url_is_https(pool: PgPool) {
    let app = crate::helpers::spawn_app_with(pool, &[("TOLLGATE_PUBLIC_URL", "https://portal.example.com")]).await;
    let cookie = session_cookie(&app.get("/login").await).expect("a session cookie");
    assert!(cookie.contains("Secure"), "{cookie}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn sessions_end_after_the_idle_and_the_absolute_timeout(pool: PgPool) {
    let app = seeded_app(pool).await;
    app.sign_in(DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await;
    assert_eq!(app.get("/dashboard").await.status(), 200);
    // Idle for longer than the 30-minute default.
    sqlx::query("UPDATE sessions SET last_seen_at = now() - interval '31 minutes' WHERE user_id IS NOT NULL")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(app.get("/dashboard").await.status(), 303);

    app.sign_in(DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await;
    assert_eq!(app.get("/dashboard").await.status(), 200);
    // Past the absolute lifetime, however recently used.
    sqlx::query("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE user_id IS NOT NULL")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(app.get("/dashboard").await.status(), 303);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn without_origin_a_post_must_come_from_a_page_of_this_site(pool: PgPool) {
    let app = seeded_app(pool).await;
    let form = |token: &str| {
        vec![
            ("csrf_token".to_owned(), token.to_owned()),
            ("email".to_owned(), DEMO_DEVELOPER_EMAIL.to_owned()),
            ("password".to_owned(), DEMO_DEVELOPER_PASSWORD.to_owned()),
        ]
    };
    let token = app.csrf_token("/login").await;
    for (name, value) in [
        ("referer", "https://evil.example/login"),
        ("referer", "http://evil.example/"),
        ("referer", "not a url"),
        ("origin", "null"),
    ] {
        let res = app.client.post(app.url("/login")).header(name, value).form(&form(&token)).send().await.unwrap();
        assert_eq!(res.status(), 403, "{name}: {value}");
    }
    let res = app.client.post(app.url("/login")).header("referer", app.url("/login?next=%2Fapps")).form(&form(&token));
    let res = res.send().await.unwrap();
    assert_eq!(location(&res), "/dashboard", "a Referer of this site passes");
}

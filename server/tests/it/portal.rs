//! The developer portal's self-service journeys, over HTTP.

use sqlx::PgPool;
use tollgate::cli::dev::seed;

use crate::helpers::{TestApp, csrf_from, spawn_app, without_csrf};

pub fn location(res: &reqwest::Response) -> String {
    res.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// The newest queued mail to an address: (subject, body).
pub async fn last_mail(pool: &PgPool, to: &str) -> (String, String) {
    sqlx::query_as(
        "SELECT subject, body_text FROM outbox_emails WHERE to_address = $1::citext ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(to)
    .fetch_one(pool)
    .await
    .expect("a queued mail")
}

pub fn link_token(body: &str, path: &str) -> String {
    let start = body.find(&format!("{path}?token=")).expect("a link in the mail") + path.len() + "?token=".len();
    body[start..].split_whitespace().next().unwrap().to_owned()
}

pub async fn sign_up(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    sign_up_for(app, "Acme Labs", email, password).await
}

pub async fn sign_up_for(app: &TestApp, organisation: &str, email: &str, password: &str) -> reqwest::Response {
    let token = app.csrf_token("/signup").await;
    app.post_form(
        "/signup",
        &[("csrf_token", &token), ("organisation", organisation), ("email", email), ("password", password)],
    )
    .await
}

/// Signs up, verifies by the emailed link and signs in.
pub async fn verified_developer(app: &TestApp, email: &str) {
    verified_developer_of(app, "Acme Labs", email).await;
}

/// `verified_developer` for an organisation of this name.
pub async fn verified_developer_of(app: &TestApp, organisation: &str, email: &str) {
    let res = sign_up_for(app, organisation, email, "correct horse battery").await;
    assert_eq!(res.status(), 200);
    let (_, body) = last_mail(&app.pool, email).await;
    let token = link_token(&body, "/verify");
    let html = app.get(&format!("/verify?token={token}")).await.text().await.unwrap();
    let res = app.post_form("/verify", &[("csrf_token", &csrf_from(&html)), ("token", &token)]).await;
    assert_eq!(location(&res), "/login?verified=1");
    let res = app.sign_in(email, "correct horse battery").await;
    assert_eq!(location(&res), "/dashboard", "verified developers sign in");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn sign_up_sends_a_single_use_verification_link_and_then_sign_in_works(pool: PgPool) {
    let app = spawn_app(pool).await;
    let res = sign_up(&app, "ada@example.com", "correct horse battery").await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Check your email"));
    let (subject, body) = last_mail(&app.pool, "ada@example.com").await;
    assert!(subject.contains("Verify your email"), "{subject}");
    // Not verified yet: sign-in is refused with a pointer to verification, in the words of a
    // wrong password (else signing up, then in, would tell whether the address had an account).
    let unverified = app.sign_in("ada@example.com", "correct horse battery").await;
    assert_eq!(unverified.status(), 401);
    let unverified = error_text(&unverified.text().await.unwrap());
    assert!(unverified.contains("Follow the link we emailed you"), "{unverified}");
    let wrong = app.sign_in("ada@example.com", "not the password at all").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(error_text(&wrong.text().await.unwrap()), unverified);
    let token = link_token(&body, "/verify");
    // Opening the link changes nothing; the button does.
    let html = app.get(&format!("/verify?token={token}")).await.text().await.unwrap();
    assert!(html.contains("Verify email"));
    let res = app.post_form("/verify", &[("csrf_token", &csrf_from(&html)), ("token", &token)]).await;
    assert_eq!(location(&res), "/login?verified=1");
    // Single use.
    assert_eq!(app.get(&format!("/verify?token={token}")).await.status(), 410);
    let html = app.get("/login").await.text().await.unwrap();
    let res = app.post_form("/verify", &[("csrf_token", &csrf_from(&html)), ("token", &token)]).await;
    assert_eq!(res.status(), 410);
    assert_eq!(location(&app.sign_in("ada@example.com", "correct horse battery").await), "/dashboard");
}

/// The sign-in page's error line.
fn error_text(page: &str) -> String {
    let marker = "id=\"login-error\">";
    let start = page.find(marker).unwrap_or_else(|| panic!("no error in {page}")) + marker.len();
    page[start..].split('<').next().unwrap().to_owned()
}

/// An address is one address whatever its case, as people type it: sign-in, sign-up and
/// the reset mail all find the account (the column is `citext`; a text parameter compared
/// with it was case-sensitive).
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_email_address_matches_whatever_its_case(pool: PgPool) {
    seed(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    let demo = tollgate::cli::dev::DEMO_DEVELOPER_EMAIL;
    let shouted = demo.to_uppercase();
    assert_eq!(location(&app.sign_in(&shouted, tollgate::cli::dev::DEMO_DEVELOPER_PASSWORD).await), "/dashboard");

    // The reset mail goes to the account as it was registered.
    let token = app.csrf_token("/password/forgot").await;
    let res = app.post_form("/password/forgot", &[("csrf_token", &token), ("email", "Dev@Example.COM")]).await;
    assert_eq!(res.status(), 200);
    let (subject, _) = last_mail(&app.pool, demo).await;
    assert!(subject.to_lowercase().contains("reset"), "{subject}");
    // What cannot be an address is said beside the field, not answered "check your email".
    for typed in ["", "no-at-sign"] {
        let res = app.post_form("/password/forgot", &[("csrf_token", &token), ("email", typed)]).await;
        assert_eq!(res.status(), 422, "{typed:?}");
        assert!(res.text().await.unwrap().contains("id=\"email-error\""), "{typed:?}");
    }

    // Signing up again in another case is the same neutral answer, and the owner is told.
    // (Another address: one address gets one mail per cooldown.)
    let admin = tollgate::cli::dev::DEMO_ADMIN_EMAIL;
    let fresh = sign_up(&app, "fresh@example.com", "correct horse battery").await.text().await.unwrap();
    let again = sign_up(&app, &admin.to_uppercase(), "correct horse battery").await;
    assert_eq!(again.status(), 200);
    let again = again.text().await.unwrap();
    assert_eq!(
        without_csrf(&again).replace(&admin.to_uppercase(), "E"),
        without_csrf(&fresh).replace("fresh@example.com", "E")
    );
    assert!(last_mail(&app.pool, admin).await.0.contains("already have"));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn verification_links_expire(pool: PgPool) {
    let app = spawn_app(pool).await;
    sign_up(&app, "late@example.com", "correct horse battery").await;
    let (_, body) = last_mail(&app.pool, "late@example.com").await;
    let token = link_token(&body, "/verify");
    sqlx::query("UPDATE user_tokens SET expires_at = now() - interval '1 second'").execute(&app.pool).await.unwrap();
    assert_eq!(app.get(&format!("/verify?token={token}")).await.status(), 410);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn sign_up_reset_and_resend_answer_the_same_for_known_and_unknown_emails(pool: PgPool) {
    seed(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    let known = sign_up(&app, tollgate::cli::dev::DEMO_DEVELOPER_EMAIL, "correct horse battery").await;
    let (known_status, known_body) = (known.status(), known.text().await.unwrap());
    let unknown = sign_up(&app, "fresh@example.com", "correct horse battery").await;
    let (unknown_status, unknown_body) = (unknown.status(), unknown.text().await.unwrap());
    assert_eq!(known_status, unknown_status);
    let normalise = |html: &str| {
        without_csrf(html).replace(tollgate::cli::dev::DEMO_DEVELOPER_EMAIL, "E").replace("fresh@example.com", "E")
    };
    assert_eq!(normalise(&known_body), normalise(&unknown_body));
    // The known address is told in its mailbox instead.
    let (subject, _) = last_mail(&app.pool, tollgate::cli::dev::DEMO_DEVELOPER_EMAIL).await;
    assert!(subject.contains("already have"), "{subject}");

    for path in ["/password/forgot", "/verify/resend"] {
        let mut bodies = Vec::new();
        for email in [tollgate::cli::dev::DEMO_DEVELOPER_EMAIL, "nobody@example.com"] {
            let token = app.csrf_token(path).await;
            let res = app.post_form(path, &[("csrf_token", &token), ("email", email)]).await;
            assert_eq!(res.status(), 200);
            let html = res.text().await.unwrap();
            bodies.push(without_csrf(&html));
        }
        assert_eq!(bodies[0], bodies[1], "{path}");
    }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_password_reset_is_single_use_lifts_throttling_and_can_end_other_sessions(pool: PgPool) {
    seed(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    let email = tollgate::cli::dev::DEMO_DEVELOPER_EMAIL;
    // Another browser is signed in.
    let other = TestApp { base: app.base.clone(), pool: app.pool.clone(), client: crate::helpers::client() };
    assert_eq!(location(&other.sign_in(email, tollgate::cli::dev::DEMO_DEVELOPER_PASSWORD).await), "/dashboard");
    // Lock the account out with failures.
    for _ in 0..6 {
        app.sign_in(email, "wrong wrong wrong").await;
    }
    let token = app.csrf_token("/password/forgot").await;
    app.post_form("/password/forgot", &[("csrf_token", &token), ("email", email)]).await;
    let (_, body) = last_mail(&app.pool, email).await;
    let reset = link_token(&body, "/password/reset");
    let html = app.get(&format!("/password/reset?token={reset}")).await.text().await.unwrap();
    let weak = app
        .post_form("/password/reset", &[("csrf_token", &csrf_from(&html)), ("token", &reset), ("password", "123")])
        .await;
    assert_eq!(weak.status(), 422);
    let res = app
        .post_form(
            "/password/reset",
            &[
                ("csrf_token", &csrf_from(&html)),
                ("token", &reset),
                ("password", "a brand new passphrase"),
                ("end_other_sessions", "on"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/login?reset=1");
    let again = app
        .post_form(
            "/password/reset",
            &[("csrf_token", &csrf_from(&html)), ("token", &reset), ("password", "another passphrase")],
        )
        .await;
    assert_eq!(again.status(), 410, "reset links are single-use");
    assert_eq!(location(&app.sign_in(email, "a brand new passphrase").await), "/dashboard", "the pause is lifted");
    assert_eq!(other.get("/dashboard").await.status(), 303, "the other session was ended");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn reset_links_expire(pool: PgPool) {
    seed(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    let token = app.csrf_token("/password/forgot").await;
    app.post_form("/password/forgot", &[("csrf_token", &token), ("email", tollgate::cli::dev::DEMO_DEVELOPER_EMAIL)])
        .await;
    let (_, body) = last_mail(&app.pool, tollgate::cli::dev::DEMO_DEVELOPER_EMAIL).await;
    let reset = link_token(&body, "/password/reset");
    sqlx::query("UPDATE user_tokens SET expires_at = now() - interval '1 second'").execute(&app.pool).await.unwrap();
    assert_eq!(app.get(&format!("/password/reset?token={reset}")).await.status(), 410);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn sign_up_shows_every_problem_next_to_its_field(pool: PgPool) {
    let app = spawn_app(pool).await;
    let token = app.csrf_token("/signup").await;
    let res = app
        .post_form(
            "/signup",
            &[("csrf_token", &token), ("organisation", ""), ("email", "nope"), ("password", "password")],
        )
        .await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    for id in ["organisation-error", "email-error", "password-error"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id} missing");
    }
    assert!(html.contains("aria-invalid=\"true\""));
    // And all of them at the top, each a link to its field, announced; the title says so too.
    let summary =
        html.split("data-testid=\"error-summary\"").nth(1).expect("a summary").split("</div>").next().unwrap();
    let links: Vec<&str> = summary.split("<a href=\"#").skip(1).map(|l| l.split('"').next().unwrap()).collect();
    assert_eq!(links, ["organisation", "email", "password"], "{summary}");
    assert!(summary.contains(">Password: "), "each names its field: {summary}");
    assert!(html.contains("role=\"alert\" aria-labelledby=\"error-summary-title\""), "{html}");
    assert!(html.contains("<title>Error: Create an account"), "{html}");
    // A form without problems has no summary.
    assert!(!app.get("/signup").await.text().await.unwrap().contains("error-summary"));
}

/// Registers an app on the demo Basic plan; returns its path and the key shown once.
pub async fn register_app(app: &TestApp, name: &str) -> (String, String) {
    let html = app.get("/apps/new").await.text().await.unwrap();
    let marker = "<option value=\"";
    let basic = html
        .match_indices(marker)
        .map(|(i, _)| &html[i + marker.len()..])
        .find(|rest| rest.split("</option>").next().unwrap().contains("Basic"))
        .expect("the Basic plan is offered");
    let plan_id = basic.split('"').next().unwrap().to_owned();
    let res =
        app.post_form("/apps/new", &[("csrf_token", &csrf_from(&html)), ("name", name), ("plan_id", &plan_id)]).await;
    assert_eq!(res.status(), 303);
    let path = location(&res);
    let page = app.get(&path).await.text().await.unwrap();
    let start =
        page.find("data-testid=\"new-key\">").expect("the key is shown once") + "data-testid=\"new-key\">".len();
    let key = page[start..].split('<').next().unwrap().to_owned();
    (path, key)
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_key_is_shown_once_then_only_by_prefix_and_rotates_and_revokes(pool: PgPool) {
    seed(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    verified_developer(&app, "keys@example.com").await;
    let (path, key) = register_app(&app, "Keys app").await;
    assert!(key.starts_with("tg_uk_") && key.len() == 45, "{key}");
    let again = app.get(&path).await.text().await.unwrap();
    assert!(!again.contains(&key), "shown exactly once");
    assert!(again.contains(&key[..10]) && again.contains(&key[key.len() - 4..]));

    // Rotate: a new key; the old one shows when it dies.
    let marker = format!("{path}/keys/");
    let key_id = again[again.find(&marker).unwrap() + marker.len()..].split('/').next().unwrap().to_owned();
    // An overlap out of range is a clear refusal, also one too large for a duration.
    for hours in ["9223372036854775807", "-1", "721"] {
        let res = app
            .post_form(
                &format!("{path}/keys/{key_id}/rotate"),
                &[("csrf_token", &csrf_from(&again)), ("overlap_hours", hours)],
            )
            .await;
        assert_eq!(res.status(), 422, "{hours}");
        assert!(res.text().await.unwrap().contains("720 hours"), "{hours}");
    }
    let res = app
        .post_form(
            &format!("{path}/keys/{key_id}/rotate"),
            &[("csrf_token", &csrf_from(&again)), ("overlap_hours", "24")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let page = app.get(&path).await.text().await.unwrap();
    let start = page.find("data-testid=\"new-key\">").unwrap() + "data-testid=\"new-key\">".len();
    let rotated = page[start..].split('<').next().unwrap().to_owned();
    assert_ne!(rotated, key);
    assert!(page.contains("expires "), "the old key shows when it dies");
    // The replacement cannot be rotated while the old key still works: chained rotations
    // would keep adding working keys.
    let new_id = page
        .match_indices(&marker)
        .map(|(i, _)| page[i + marker.len()..].split('/').next().unwrap())
        .find(|id| *id != key_id && page.contains(&format!("{path}/keys/{id}/rotate")))
        .unwrap()
        .to_owned();
    let form = [("csrf_token", csrf_from(&page)), ("overlap_hours", "24".to_owned())];
    let chained = app.client.post(app.url(&format!("{path}/keys/{new_id}/rotate"))).form(&form).send().await.unwrap();
    assert_eq!(chained.status(), 409);
    assert!(chained.text().await.unwrap().contains("the key this one replaced still works until"));
    let working: i64 = sqlx::query_scalar("SELECT count(*) FROM credentials WHERE revoked_at IS NULL")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(working, 2);

    // Revoke the old key: immediate.
    let res = app.post_form(&format!("{path}/keys/{key_id}/revoke"), &[("csrf_token", &csrf_from(&page))]).await;
    assert_eq!(res.status(), 303);
    let page = app.get(&path).await.text().await.unwrap();
    assert!(page.contains(">revoked<"), "{page}");
    let revoked: bool = sqlx::query_scalar("SELECT revoked_at IS NOT NULL FROM credentials WHERE id = $1::uuid")
        .bind(&key_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(revoked);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn no_plaintext_key_or_password_is_stored_anywhere(pool: PgPool) {
    seed(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    verified_developer(&app, "secrets@example.com").await;
    let (_, key) = register_app(&app, "Secret app").await;
    let tables: Vec<String> = sqlx::query_scalar("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert!(tables.len() > 20);
    for table in tables {
        let rows: Vec<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT row_to_json(t)::text FROM \"{table}\" t")))
                .fetch_all(&app.pool)
                .await
                .unwrap();
        for row in rows {
            for secret in [
                key.as_str(),
                "correct horse battery",
                tollgate::cli::dev::DEMO_DEVELOPER_PASSWORD,
                tollgate::cli::dev::DEMO_ADMIN_PASSWORD,
            ] {
                assert!(!row.contains(secret), "{table} stores a secret in plain text: {row}");
            }
        }
    }
}

/// The text of the element with `data-testid="{id}"`.
fn test_id_text(page: &str, id: &str) -> String {
    let marker = format!("data-testid=\"{id}\">");
    let start = page.find(&marker).unwrap_or_else(|| panic!("no {id} in {page}")) + marker.len();
    page[start..].split('<').next().unwrap().replace("&#x27;", "'").replace("&#39;", "'")
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_key_box_shows_the_gateway_url_base_path_and_key_location(pool: PgPool) {
    use tollgate_core::apis::detail::{self, ApiChanges};
    use tollgate_core::apis::{KeyLocation, find_by_slug};
    seed(&pool).await.unwrap();
    let app = crate::helpers::spawn_app_with(pool, &[("TOLLGATE_GATEWAY_URL", "https://gw.example.com")]).await;
    verified_developer(&app, "box@example.com").await;
    let (path, _) = register_app(&app, "Box app").await;
    // The key was shown once; rotating shows the box again with a new one.
    let rotate = |page: String| {
        let app = &app;
        let path = path.clone();
        async move {
            let marker = format!("{path}/keys/");
            let ids: Vec<&str> =
                page.match_indices(&marker).map(|(i, _)| page[i + marker.len()..].split('/').next().unwrap()).collect();
            let active = ids.iter().find(|id| page.contains(&format!("{path}/keys/{id}/rotate"))).unwrap().to_string();
            let form = [("csrf_token", csrf_from(&page)), ("overlap_hours", "0".to_owned())];
            let res =
                app.client.post(app.url(&format!("{path}/keys/{active}/rotate"))).form(&form).send().await.unwrap();
            assert_eq!(res.status(), 303);
            app.get(&path).await.text().await.unwrap()
        }
    };
    let page = rotate(app.get(&path).await.text().await.unwrap()).await;
    let key = test_id_text(&page, "new-key");
    let example = test_id_text(&page, "key-example");
    assert_eq!(example, format!("curl --globoff 'https://gw.example.com/weather/…?user_key={key}'"), "{example}");
    assert!(!page.contains("127.0.0.1:8081"), "no hard-coded gateway");

    // The provider moves the key to a header: the box follows.
    let api = find_by_slug(&app.pool, "weather").await.unwrap().unwrap();
    let changes = ApiChanges {
        key_location: Some(KeyLocation::Header),
        key_name: Some("X-Api-Key".into()),
        ..ApiChanges::default()
    };
    detail::update(&app.pool, api.id, &changes, &tollgate_core::audit::Actor::system("test")).await.unwrap();
    let page = rotate(app.get(&path).await.text().await.unwrap()).await;
    let key = test_id_text(&page, "new-key");
    let example = test_id_text(&page, "key-example");
    assert!(
        example.contains("'https://gw.example.com/weather/…'") && example.contains(&format!("-H 'X-Api-Key: {key}'")),
        "{example}"
    );
    assert!(page.contains("in the X-Api-Key header"), "{page}");
    // The API page's samples follow too.
    let docs = app.get("/apis/weather").await.text().await.unwrap();
    assert!(
        docs.contains("-H &#x27;X-Api-Key: YOUR_KEY&#x27;") || docs.contains("-H &#39;X-Api-Key: YOUR_KEY&#39;"),
        "{docs}"
    );
    assert!(!docs.contains("user_key=YOUR_KEY"), "{docs}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn revoking_a_key_asks_first_then_says_it_is_done(pool: PgPool) {
    seed(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    verified_developer(&app, "revoke@example.com").await;
    let (path, _) = register_app(&app, "Revoke app").await;
    let page = app.get(&path).await.text().await.unwrap();
    let marker = format!("{path}/keys/");
    let key_id = page[page.find(&marker).unwrap() + marker.len()..].split('/').next().unwrap().to_owned();
    let confirm_path = format!("{path}/keys/{key_id}/revoke");
    // The Revoke button opens a page that asks; nothing is revoked yet.
    assert!(page.contains(&format!("<form method=\"get\" action=\"{confirm_path}\"")), "{page}");
    let res = app.get(&confirm_path).await;
    assert_eq!(res.status(), 200);
    let confirm = res.text().await.unwrap();
    assert!(confirm.contains("Revoke key") && confirm.contains("cannot be undone"), "{confirm}");
    let revoked = || async {
        sqlx::query_scalar::<_, bool>("SELECT revoked_at IS NOT NULL FROM credentials WHERE id = $1::uuid")
            .bind(&key_id)
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    assert!(!revoked().await, "opening the page changes nothing");
    // Confirming revokes, and the application's page says so.
    let res = app.post_form(&confirm_path, &[("csrf_token", &csrf_from(&confirm))]).await;
    assert_eq!(location(&res), format!("{path}?revoked={key_id}"));
    assert!(revoked().await);
    let page = app.get(&location(&res)).await.text().await.unwrap();
    assert!(page.contains("role=\"status\"") && page.contains("is revoked"), "{page}");
    // Another account cannot even see the question.
    let stranger = TestApp { base: app.base.clone(), pool: app.pool.clone(), client: crate::helpers::client() };
    verified_developer(&stranger, "stranger@example.com").await;
    assert_eq!(stranger.get(&confirm_path).await.status(), 404);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn deleting_an_application_asks_first_then_says_it_is_done(pool: PgPool) {
    seed(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    verified_developer(&app, "delete@example.com").await;
    let (path, _) = register_app(&app, "Doomed app").await;
    let page = app.get(&path).await.text().await.unwrap();
    let confirm_path = format!("{path}/delete");
    // The Delete button opens a page that asks; nothing is deleted yet.
    assert!(page.contains(&format!("<form method=\"get\" action=\"{confirm_path}\"")), "{page}");
    let res = app.get(&confirm_path).await;
    assert_eq!(res.status(), 200);
    let confirm = res.text().await.unwrap();
    assert!(confirm.contains("Delete Doomed app?") && confirm.contains("cannot be undone"), "{confirm}");
    let exists = || async {
        sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM applications WHERE name = 'Doomed app')")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    assert!(exists().await, "opening the page changes nothing");
    // Another account cannot even see the question.
    let stranger = TestApp { base: app.base.clone(), pool: app.pool.clone(), client: crate::helpers::client() };
    verified_developer(&stranger, "stranger@example.com").await;
    assert_eq!(stranger.get(&confirm_path).await.status(), 404);
    // Confirming deletes, and the list says so.
    let res = app.post_form(&confirm_path, &[("csrf_token", &csrf_from(&confirm))]).await;
    assert_eq!(location(&res), "/apps");
    assert!(!exists().await);
    let list = app.get("/apps").await.text().await.unwrap();
    assert!(list.contains("role=\"status\"") && list.contains("Doomed app is deleted"), "{list}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_api_description_is_rendered_markdown_with_nothing_that_runs(pool: PgPool) {
    use tollgate_core::apis::detail::{self, ApiChanges};
    use tollgate_core::apis::find_by_slug;
    seed(&pool).await.unwrap();
    let api = find_by_slug(&pool, "weather").await.unwrap().unwrap();
    let description = "Forecasts **by the hour**.\n\n<script>alert(1)</script>\n\n[docs](javascript:alert(2)) \
                       ![pixel](https://evil.example/p.png)\n\n- one\n- two";
    let changes = ApiChanges { description: Some(description.into()), ..ApiChanges::default() };
    detail::update(&pool, api.id, &changes, &tollgate_core::audit::Actor::system("test")).await.unwrap();
    let app = spawn_app(pool).await;
    let page = app.get("/apis/weather").await.text().await.unwrap();
    assert!(page.contains("<strong>by the hour</strong>") && page.contains("<li>one</li>"), "{page}");
    assert!(!page.contains("**by the hour**"), "no raw Markdown");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "raw HTML shows as text");
    assert!(!page.contains("javascript:") && !page.contains("evil.example"), "{page}");
    let home = app.get("/").await.text().await.unwrap();
    assert!(home.contains("Forecasts by the hour."), "the catalog shows plain text");
}

/// Postgres text cannot hold a NUL character: one in a query string or a form is refused
/// where it enters, with a 400 that names the field, never a database error's 500.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_nul_character_in_a_query_or_a_form_is_a_400_that_names_the_field(pool: PgPool) {
    seed(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    let res = app.get("/?q=%00").await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("“q” contains a NUL character"));
    // In the path too: a slug with one went to Postgres (500, signed out).
    for page in ["/apis/%00", "/apis/a%00b/spec", "/apis/weather%00/openapi"] {
        let res = app.get(page).await;
        assert_eq!(res.status(), 400, "{page}");
        assert!(res.text().await.unwrap().contains("NUL character"), "{page}");
    }
    let token = app.csrf_token("/login").await;
    let res =
        app.post_form("/login", &[("csrf_token", &token), ("email", "a\0b@example.com"), ("password", "x")]).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("“email” contains a NUL character"));

    let admin = app.sign_in(tollgate::cli::dev::DEMO_ADMIN_EMAIL, tollgate::cli::dev::DEMO_ADMIN_PASSWORD).await;
    assert_eq!(location(&admin), "/admin");
    for page in ["/admin/accounts?q=%00", "/admin/applications?q=x%00"] {
        assert_eq!(app.get(page).await.status(), 400, "{page}");
    }
    assert_eq!(app.get("/admin/accounts?q=ok").await.status(), 200);
}

/// The Quick start sample of an operation with a JSON body sends a body built from its schema,
/// so what a developer copies is a valid request: the demo's `POST /alerts` requires two fields.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_quick_start_sample_sends_the_required_fields_of_the_request_body(pool: PgPool) {
    seed(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    let page = app.get("/apis/weather").await.text().await.unwrap();
    let start = page.find("<code>POST /alerts</code>").unwrap_or_else(|| panic!("no POST /alerts sample in {page}"));
    let sample = &page[start..start + page[start..].find("</details>").unwrap()];
    let curl = sample.split("<pre><code>").nth(1).unwrap().split("</code>").next().unwrap();
    // The sample sits in HTML: quotes are escaped there, as before.
    assert!(!curl.contains('"') && !curl.contains('\''), "{curl}");
    let curl = curl.replace("&quot;", "\"").replace("&#34;", "\"").replace("&#x27;", "'").replace("&#39;", "'");
    assert!(curl.contains(r#"-d '{"#) && !curl.contains("-d '{}'"), "{curl}");
    assert!(
        curl.contains(r#""cityId":"string""#) && curl.contains(r#""callbackUrl":"https://example.com/""#),
        "{curl}"
    );
    // Python and JavaScript send the same fields.
    assert!(sample.matches("cityId").count() >= 3 && sample.matches("callbackUrl").count() >= 3, "{sample}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_query_parameter_given_twice_gets_the_error_page_naming_it(pool: PgPool) {
    seed(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    for (path, name) in [("/?q=a&q=b", "q"), ("/login?next=/apps&next=/team", "next"), ("/apis/weather?x=1", "")] {
        let res = app.get(path).await;
        let status = res.status().as_u16();
        let kind = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let body = res.text().await.unwrap();
        assert_eq!(kind, "text/html; charset=utf-8", "{path}: {body}");
        if name.is_empty() {
            assert_eq!(status, 200, "an unknown parameter is ignored: {path}");
            continue;
        }
        assert_eq!(status, 422, "{path}: {body}");
        assert!(body.contains(&format!("{name}: given more than once; give each parameter once")), "{path}: {body}");
    }
}

/// A refused edit of an application's details comes back on its page, what was typed kept and
/// the problem beside its field (it was a separate error page, the typing lost).
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_refused_details_edit_keeps_what_was_typed(pool: PgPool) {
    seed(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    app.sign_in(tollgate::cli::dev::DEMO_DEVELOPER_EMAIL, tollgate::cli::dev::DEMO_DEVELOPER_PASSWORD).await;
    let (path, _) = register_app(&app, "Edited").await;
    let token = app.csrf_token(&path).await;
    let res = app.post_form(&path, &[("csrf_token", &token), ("name", " "), ("description", "kept text")]).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"name-error\"") && html.contains(">kept text</textarea>"), "{html}");
    let long = "d".repeat(2_001);
    let res = app.post_form(&path, &[("csrf_token", &token), ("name", "Edited"), ("description", &long)]).await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("id=\"description-error\""));
    let res = app.post_form(&path, &[("csrf_token", &token), ("name", "Renamed"), ("description", "fine")]).await;
    assert_eq!((res.status().as_u16(), location(&res)), (303, path.clone()));
    assert!(app.get(&path).await.text().await.unwrap().contains("Renamed"));
}

/// An API in app_id + app_key mode tells developers to send both, and "Try it out" has a
/// field for each (it sent only one before, so every call got a 401).
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_app_id_and_key_api_page_asks_for_both(pool: PgPool) {
    use tollgate_core::apis::detail::{self, ApiChanges};
    use tollgate_core::apis::{AuthMode, KeyLocation, find_by_slug};
    seed(&pool).await.unwrap();
    let app = spawn_app(pool.clone()).await;
    let instructions = |page: &str| {
        let at = page.find("data-testid=\"key-instructions\"").expect("key instructions");
        page[at..at + page[at..].find("</p>").unwrap()].to_owned()
    };
    let page = app.get("/apis/weather").await.text().await.unwrap();
    assert!(instructions(&page).contains("send your key as the <code>user_key</code> query parameter"), "{page}");
    assert!(!page.contains("try-app-id"));

    let api = find_by_slug(&pool, "weather").await.unwrap().unwrap();
    let pair = ApiChanges {
        auth_mode: Some(AuthMode::AppIdAppKey),
        key_location: Some(KeyLocation::Header),
        ..ApiChanges::default()
    };
    detail::update(&pool, api.id, &pair, &tollgate_core::audit::Actor::system("test")).await.unwrap();
    let page = app.get("/apis/weather").await.text().await.unwrap();
    let said = instructions(&page);
    assert!(said.contains("<code>app_id</code> header") && said.contains("<code>app_key</code> header"), "{said}");
    assert!(!said.contains("user_key"), "{said}");
    assert!(page.contains("id=\"try-app-id\"") && page.contains("data-app-id-name=\"app_id\""), "{page}");
    assert!(page.contains("data-key-name=\"app_key\" ") && page.contains("data-key-in=\"header\""), "{page}");
}

/// The samples of one operation on an API's page, quotes unescaped: (curl, Python, JavaScript).
fn samples_of(page: &str, operation: &str) -> [String; 3] {
    let start = page.find(&format!("<code>{operation}</code>")).unwrap_or_else(|| panic!("no {operation} in {page}"));
    let sample = &page[start..start + page[start..].find("</details>").unwrap()];
    let code: Vec<String> = sample
        .split("<pre><code>")
        .skip(1)
        .map(|c| {
            c.split("</code>").next().unwrap().replace("&quot;", "\"").replace("&#34;", "\"").replace("&#39;", "'")
        })
        .collect();
    [code[0].clone(), code[1].clone(), code[2].clone()]
}

/// A path parameter in a sample is the document's example, else a capital placeholder, never
/// `{cityId}`: curl's globbing turned that into `/cities/cityId/current` without a word.
/// A partner reads on the API's page what the gateway's own answers mean and how to read
/// its limit headers, before meeting them in production.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_api_page_explains_the_gateways_errors_and_limit_headers(pool: PgPool) {
    seed(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    let page = app.get("/apis/weather").await.text().await.unwrap();
    let table = page.split("data-testid=\"gateway-errors\"").nth(1).expect("the errors table");
    for code in
        ["missing_credentials", "invalid_credentials", "application_not_live", "limit_exceeded", "method_not_allowed"]
    {
        assert!(table.contains(&format!("<code>{code}</code>")), "{code} explained");
    }
    assert!(page.contains("<code>RateLimit-Remaining</code>") && page.contains("<code>Retry-After</code>"), "{page}");
    assert!(page.contains("/weather/_tollgate/limits"), "the limits report is named with this API's base path");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn quick_start_samples_fill_path_parameters_and_curl_does_not_glob(pool: PgPool) {
    use tollgate_core::apis::lifecycle::publish;
    use tollgate_core::apis::{NewApi, create_from_spec};
    use tollgate_core::audit::Actor;

    seed(&pool).await.unwrap();
    const ORDERS: &str = r#"{"openapi": "3.0.3", "info": {"title": "Orders", "version": "1"}, "paths": {
        "/orders/{orderId}/lines/{line-no}": {"get": {
            "parameters": [
                {"name": "orderId", "in": "path", "required": true, "schema": {"type": "string"}},
                {"name": "line-no", "in": "path", "required": true, "schema": {"type": "integer", "enum": [1, 2]}}
            ],
            "responses": {"200": {"description": "a line"}}}}}}"#;
    let actor = Actor::system("test");
    let new = NewApi {
        name: Some("Orders".into()),
        slug: Some("orders".into()),
        base_path: Some("/orders-api".into()),
        upstream_url: Some("http://127.0.0.1:9".into()),
    };
    let spec = tollgate_openapi::parse(ORDERS).unwrap();
    let orders = create_from_spec(&pool, ORDERS, &spec, new, &actor).await.unwrap();
    publish(&pool, orders.id, &actor).await.unwrap();
    let app = spawn_app(pool).await;

    // The demo documents `lisbon` as the city: every sample calls that city.
    let page = app.get("/apis/weather").await.text().await.unwrap();
    let [curl, python, javascript] = samples_of(&page, "GET /cities/{cityId}/current");
    let url = "/weather/cities/lisbon/current?user_key=YOUR_KEY";
    assert!(curl.starts_with("curl --globoff '") && curl.contains(&format!("{url}'")), "{curl}");
    assert!(python.contains(&format!("{url}\"")), "{python}");
    assert!(javascript.contains(&format!("{url}\"")), "{javascript}");
    let [curl, ..] = samples_of(&page, "GET /cities/{cityId}/forecast");
    assert!(curl.contains("/weather/cities/lisbon/forecast?user_key=YOUR_KEY'"), "{curl}");

    // Without an example: a placeholder that no language or shell reads as anything else.
    let page = app.get("/apis/orders").await.text().await.unwrap();
    let samples = samples_of(&page, "GET /orders/{orderId}/lines/{line-no}");
    for sample in &samples {
        assert!(sample.contains("/orders-api/orders/ORDER_ID/lines/1?user_key=YOUR_KEY"), "{sample}");
        let url = sample.split("/orders-api").nth(1).unwrap().split(['\'', '"']).next().unwrap();
        assert!(!url.contains(['{', '}', '[', ']', '$', ' ']), "{url}");
    }
    assert!(samples[0].starts_with("curl --globoff '"), "{}", samples[0]);
}

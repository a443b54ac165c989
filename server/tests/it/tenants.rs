//! Tenant isolation: one account replays every id of another account on
//! every portal route and verb, and learns nothing.

use sqlx::PgPool;
use tollgate::cli::dev::{DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD, seed};

use crate::helpers::{TestApp, client, csrf_from, spawn_app};
use crate::portal::{register_app, verified_developer};

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn another_accounts_ids_answer_404_on_every_route_and_verb(pool: PgPool) {
    seed(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    // Victim: the demo developer, with an app and a key.
    let victim = TestApp { base: app.base.clone(), pool: app.pool.clone(), client: client() };
    victim.sign_in(DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await;
    let (victim_app, victim_key) = register_app(&victim, "Victim secret app").await;
    let app_id = victim_app.trim_start_matches("/apps/").to_owned();
    let key_id: String = sqlx::query_scalar("SELECT c.id::text FROM credentials c WHERE c.application_id = $1::uuid")
        .bind(&app_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let victim_user: String = sqlx::query_scalar("SELECT id::text FROM users WHERE email = $1")
        .bind(DEMO_DEVELOPER_EMAIL)
        .fetch_one(&app.pool)
        .await
        .unwrap();

    // Attacker: a separate, verified account that owns its own team.
    verified_developer(&app, "mallory@example.com").await;
    register_app(&app, "Mallory app").await;
    let token = csrf_from(&app.get("/dashboard").await.text().await.unwrap());

    let gets =
        [format!("/apps/{app_id}"), format!("/apps/{app_id}/usage"), format!("/apps/{app_id}/usage.csv?table=failed")];
    let posts = [
        (format!("/apps/{app_id}"), vec![("name", "pwned"), ("description", "")]),
        (format!("/apps/{app_id}/delete"), vec![]),
        (format!("/apps/{app_id}/alerts"), vec![("mute_80", "on")]),
        (format!("/apps/{app_id}/plan"), vec![("plan_id", "00000000-0000-0000-0000-000000000000")]),
        (format!("/apps/{app_id}/plan/withdraw"), vec![]),
        (format!("/apps/{app_id}/keys"), vec![]),
        (format!("/apps/{app_id}/keys/{key_id}/rotate"), vec![("overlap_hours", "0")]),
        (format!("/apps/{app_id}/keys/{key_id}/revoke"), vec![]),
        (format!("/team/members/{victim_user}/remove"), vec![]),
        (format!("/team/members/{victim_user}/make-owner"), vec![]),
    ];
    let mut answers = Vec::new();
    for path in &gets {
        let res = app.get(path).await;
        answers.push((format!("GET {path}"), res.status().as_u16(), res.text().await.unwrap()));
    }
    for (path, fields) in &posts {
        let mut form = vec![("csrf_token", token.as_str())];
        form.extend(fields.iter().copied());
        let res = app.post_form(path, &form).await;
        answers.push((format!("POST {path}"), res.status().as_u16(), res.text().await.unwrap()));
    }
    let leaks: Vec<_> = answers
        .iter()
        .filter(|(_, status, body)| {
            *status != 404 || body.contains("Victim secret app") || body.contains(&victim_key[..10])
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "non-404 or leaking answers: {:#?}",
        leaks.iter().map(|(r, s, _)| (r, s)).collect::<Vec<_>>()
    );
    assert_eq!(answers.len(), 13);

    // And nothing changed for the victim.
    let page = victim.get(&victim_app).await.text().await.unwrap();
    assert!(page.contains("Victim secret app"));
    assert!(page.contains(">active<"), "the victim's key is untouched");
    let members: i64 = sqlx::query_scalar("SELECT count(*) FROM memberships WHERE user_id = $1::uuid")
        .bind(&victim_user)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(members, 1);
}

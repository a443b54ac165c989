//! Teams in the portal: inviting, transferring ownership, and the last owner
//! who cannot leave.

use sqlx::PgPool;

use crate::helpers::{TestApp, client, csrf_from, spawn_app};
use crate::portal::{last_mail, link_token, location, verified_developer};

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn owners_invite_members_transfer_ownership_and_the_last_owner_cannot_leave(pool: PgPool) {
    let owner = spawn_app(pool).await;
    verified_developer(&owner, "owner@example.com").await;
    let html = owner.get("/team").await.text().await.unwrap();
    let res = owner
        .post_form(
            "/team/invite",
            &[("csrf_token", &csrf_from(&html)), ("email", "new@example.com"), ("role", "member")],
        )
        .await;
    assert_eq!(res.status(), 200);
    let (subject, body) = last_mail(&owner.pool, "new@example.com").await;
    assert!(subject.contains("invited to a team"), "{subject}");
    let token = link_token(&body, "/invitations/accept");

    // The invitee has no account: they choose a password and join.
    let invitee = TestApp { base: owner.base.clone(), pool: owner.pool.clone(), client: client() };
    let page = invitee.get(&format!("/invitations/accept?token={token}")).await.text().await.unwrap();
    assert!(page.contains("Join Acme Labs"));
    let res = invitee
        .post_form(
            "/invitations/accept",
            &[("csrf_token", &csrf_from(&page)), ("token", &token), ("password", "member passphrase")],
        )
        .await;
    assert_eq!(location(&res), "/team");
    let team = invitee.get("/team").await.text().await.unwrap();
    assert!(team.contains("owner@example.com") && team.contains("new@example.com"));
    // The link is single-use.
    assert_eq!(
        client().get(owner.url(&format!("/invitations/accept?token={token}"))).send().await.unwrap().status(),
        410
    );

    // The only owner cannot leave.
    let owner_id: String = sqlx::query_scalar("SELECT id::text FROM users WHERE email = 'owner@example.com'")
        .fetch_one(&owner.pool)
        .await
        .unwrap();
    let html = owner.get("/team").await.text().await.unwrap();
    let res = owner.post_form(&format!("/team/members/{owner_id}/remove"), &[("csrf_token", &csrf_from(&html))]).await;
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("last owner"));

    // A member cannot remove the owner.
    let html = invitee.get("/team").await.text().await.unwrap();
    let res =
        invitee.post_form(&format!("/team/members/{owner_id}/remove"), &[("csrf_token", &csrf_from(&html))]).await;
    assert_eq!(res.status(), 409);

    // Ownership moves; then the old owner may leave.
    let new_id: String = sqlx::query_scalar("SELECT id::text FROM users WHERE email = 'new@example.com'")
        .fetch_one(&owner.pool)
        .await
        .unwrap();
    let html = owner.get("/team").await.text().await.unwrap();
    let res =
        owner.post_form(&format!("/team/members/{new_id}/make-owner"), &[("csrf_token", &csrf_from(&html))]).await;
    assert_eq!(location(&res), "/team");
    let html = owner.get("/team").await.text().await.unwrap();
    let res = owner.post_form(&format!("/team/members/{owner_id}/remove"), &[("csrf_token", &csrf_from(&html))]).await;
    assert_eq!(location(&res), "/");
    let roles: Vec<(String, String)> = sqlx::query_as(
        "SELECT u.email::text, m.role::text FROM memberships m JOIN users u ON u.id = m.user_id ORDER BY 1",
    )
    .fetch_all(&owner.pool)
    .await
    .unwrap();
    assert_eq!(roles, [("new@example.com".to_owned(), "owner".to_owned())]);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_owner_withdraws_a_pending_invitation_and_its_link_stops_working(pool: PgPool) {
    let owner = spawn_app(pool).await;
    verified_developer(&owner, "owner@example.com").await;
    let html = owner.get("/team").await.text().await.unwrap();
    let token = csrf_from(&html);
    let invite = [("csrf_token", token.as_str()), ("email", "typo@exmaple.com"), ("role", "owner")];
    assert_eq!(owner.post_form("/team/invite", &invite).await.status(), 200);
    let (_, body) = last_mail(&owner.pool, "typo@exmaple.com").await;
    let token = link_token(&body, "/invitations/accept");
    let id: String = sqlx::query_scalar("SELECT id::text FROM invitations WHERE email = 'typo@exmaple.com'")
        .fetch_one(&owner.pool)
        .await
        .unwrap();
    let withdraw = format!("/team/invitations/{id}/withdraw");
    let team = owner.get("/team").await.text().await.unwrap();
    assert!(team.contains(&format!("action=\"{withdraw}\"")), "{team}");

    // Another account's owner does not find it.
    let stranger = TestApp { base: owner.base.clone(), pool: owner.pool.clone(), client: client() };
    verified_developer(&stranger, "stranger@example.com").await;
    let html = stranger.get("/team").await.text().await.unwrap();
    assert_eq!(stranger.post_form(&withdraw, &[("csrf_token", &csrf_from(&html))]).await.status(), 404);

    let res = owner.post_form(&withdraw, &[("csrf_token", &csrf_from(&team))]).await;
    assert_eq!(location(&res), "/team");
    let team = owner.get("/team").await.text().await.unwrap();
    assert!(!team.contains("typo@exmaple.com"), "{team}");
    let page = client().get(owner.url(&format!("/invitations/accept?token={token}"))).send().await.unwrap();
    assert_eq!(page.status(), 410, "the mistyped address's link no longer makes an owner");
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'team.invitation_withdrawn'")
        .fetch_one(&owner.pool)
        .await
        .unwrap();
    assert_eq!(logged, 1);
}

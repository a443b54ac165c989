//! Teams in the portal: inviting, transferring ownership, the last owner
//! who cannot leave, and members of several organisations switching between them.

use sqlx::PgPool;
use tollgate::cli::dev::seed;

use crate::helpers::{TestApp, client, csrf_from, spawn_app, spawn_app_with};
use crate::portal::{last_mail, link_token, location, register_app, verified_developer, verified_developer_of};

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
    assert_eq!(location(&res), "/team", "redirected, so a reload does not invite again");
    assert!(owner.get("/team").await.text().await.unwrap().contains("Invitation sent to new@example.com."));
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

/// Leaving takes the account's lock before it counts the owners, as deleting a user takes it
/// before it checks who else owns the organisation: without it, an owner leaving while the
/// other owner deletes their user both saw the other one stay, and the members kept no owner.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn leaving_waits_for_an_account_deletion_in_progress(pool: PgPool) {
    let (owner, member, _, _) = carol_joins_partner_co(pool).await;
    let account = account_id(&owner.pool, "Partner Co").await;
    let member_id: String = sqlx::query_scalar("SELECT id::text FROM users WHERE email = 'carol@example.com'")
        .fetch_one(&owner.pool)
        .await
        .unwrap();
    let html = member.get("/team").await.text().await.unwrap();
    // What an account deletion holds while it decides.
    let mut deletion = owner.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM accounts WHERE id = $1::uuid FOR UPDATE")
        .bind(&account)
        .execute(&mut *deletion)
        .await
        .unwrap();
    let path = format!("/team/members/{member_id}/remove");
    let token = csrf_from(&html);
    let leaving = tokio::spawn(async move { member.post_form(&path, &[("csrf_token", &token)]).await.status() });
    let pool = owner.pool.clone();
    let waiting = || async {
        assert!(!leaving.is_finished(), "leaving did not wait for the account's lock");
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                            WHERE wait_event_type = 'Lock' AND query LIKE 'SELECT id FROM accounts WHERE id = $1 FOR UPDATE%')",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    crate::gateway::wait_until(std::time::Duration::from_secs(10), waiting).await;
    deletion.commit().await.unwrap();
    assert_eq!(leaving.await.unwrap(), 303);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_owner_withdraws_a_pending_invitation_and_its_link_stops_working(pool: PgPool) {
    let owner = spawn_app(pool).await;
    verified_developer(&owner, "owner@example.com").await;
    let html = owner.get("/team").await.text().await.unwrap();
    let token = csrf_from(&html);
    let invite = [("csrf_token", token.as_str()), ("email", "typo@exmaple.com"), ("role", "owner")];
    assert_eq!(owner.post_form("/team/invite", &invite).await.status(), 303);
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

/// Alice (Partner Co, with an application) and Carol (Carol Ltd, with one of her own), and
/// Carol signed in and having accepted Alice's invitation. Returns both and the two apps' paths.
async fn carol_joins_partner_co(pool: PgPool) -> (TestApp, TestApp, String, String) {
    seed(&pool).await.unwrap();
    // Carol's verification mail went out a moment before her invitation: no cooldown between them.
    let alice = spawn_app_with(pool, &[("TOLLGATE_MAIL_ADDRESS_COOLDOWN_SECONDS", "0")]).await;
    verified_developer_of(&alice, "Partner Co", "alice@example.com").await;
    let (partner_app, _) = register_app(&alice, "Partner app").await;
    let carol = TestApp { base: alice.base.clone(), pool: alice.pool.clone(), client: client() };
    verified_developer_of(&carol, "Carol Ltd", "carol@example.com").await;
    let (carol_app, _) = register_app(&carol, "Carol app").await;

    let html = alice.get("/team").await.text().await.unwrap();
    let token = csrf_from(&html);
    let invite = [("csrf_token", token.as_str()), ("email", "carol@example.com"), ("role", "member")];
    assert_eq!(alice.post_form("/team/invite", &invite).await.status(), 303);
    let (_, body) = last_mail(&alice.pool, "carol@example.com").await;
    let token = link_token(&body, "/invitations/accept");
    let page = carol.get(&format!("/invitations/accept?token={token}")).await.text().await.unwrap();
    assert!(page.contains("Join Partner Co"), "{page}");
    let res = carol.post_form("/invitations/accept", &[("csrf_token", &csrf_from(&page)), ("token", &token)]).await;
    assert_eq!(location(&res), "/team");
    (alice, carol, partner_app, carol_app)
}

fn current_organisation(html: &str) -> &str {
    let marker = "data-testid=\"current-organisation\">";
    let start = html.find(marker).expect("the header names the organisation") + marker.len();
    html[start..].split('<').next().unwrap()
}

async fn account_id(pool: &PgPool, name: &str) -> String {
    sqlx::query_scalar("SELECT id::text FROM accounts WHERE name = $1").bind(name).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn accepting_an_invitation_switches_to_the_team_and_members_of_several_switch_back_and_forth(pool: PgPool) {
    let (_alice, carol, partner_app, carol_app) = carol_joins_partner_co(pool).await;

    // She works in the team she joined, is told so, and sees its applications.
    let team = carol.get("/team").await.text().await.unwrap();
    assert!(team.contains("You joined Partner Co and now work in it."), "{team}");
    assert_eq!(current_organisation(&team), "Partner Co");
    assert!(team.contains("alice@example.com") && team.contains("carol@example.com"), "{team}");
    assert_eq!(carol.get(&partner_app).await.status(), 200);
    assert_eq!(carol.get(&carol_app).await.status(), 404);
    let apps = carol.get("/apps").await.text().await.unwrap();
    assert!(apps.contains("Partner app") && !apps.contains("Carol app"), "{apps}");

    // The header offers both organisations; switching back is a form post.
    assert!(team.contains("data-testid=\"organisation-switch\""), "{team}");
    let carol_ltd = account_id(&carol.pool, "Carol Ltd").await;
    let partner_co = account_id(&carol.pool, "Partner Co").await;
    assert!(
        team.contains(&format!("value=\"{carol_ltd}\">Carol Ltd"))
            && team.contains(&format!("value=\"{partner_co}\" selected>Partner Co")),
        "{team}"
    );
    let res = carol.post_form("/organisation", &[("csrf_token", &csrf_from(&team)), ("account", &carol_ltd)]).await;
    assert_eq!(location(&res), "/dashboard");
    let dashboard = carol.get("/dashboard").await.text().await.unwrap();
    assert!(dashboard.contains("You now work in Carol Ltd."), "{dashboard}");
    assert_eq!(current_organisation(&dashboard), "Carol Ltd");
    assert_eq!(carol.get(&carol_app).await.status(), 200);
    assert_eq!(carol.get(&partner_app).await.status(), 404);

    // The choice outlives the session: signing in again keeps Carol Ltd.
    let html = carol.get("/dashboard").await.text().await.unwrap();
    carol.post_form("/logout", &[("csrf_token", &csrf_from(&html))]).await;
    assert_eq!(location(&carol.sign_in("carol@example.com", "correct horse battery").await), "/dashboard");
    assert_eq!(current_organisation(&carol.get("/dashboard").await.text().await.unwrap()), "Carol Ltd");

    // And forth again.
    let html = carol.get("/dashboard").await.text().await.unwrap();
    let res = carol.post_form("/organisation", &[("csrf_token", &csrf_from(&html)), ("account", &partner_co)]).await;
    assert_eq!(location(&res), "/dashboard");
    assert_eq!(carol.get(&partner_app).await.status(), 200);

    // An organisation she does not belong to cannot be chosen, and without the form's token nothing changes.
    let provider: String = sqlx::query_scalar("SELECT id::text FROM accounts WHERE kind = 'provider'")
        .fetch_one(&carol.pool)
        .await
        .unwrap();
    let res = carol.post_form("/organisation", &[("csrf_token", &csrf_from(&html)), ("account", &provider)]).await;
    assert_eq!(res.status(), 404);
    let res = carol.post_form("/organisation", &[("account", &carol_ltd)]).await;
    assert_eq!(res.status(), 403);
    assert_eq!(current_organisation(&carol.get("/dashboard").await.text().await.unwrap()), "Partner Co");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_removed_members_choice_falls_back_to_an_organisation_they_still_belong_to(pool: PgPool) {
    let (alice, carol, partner_app, carol_app) = carol_joins_partner_co(pool).await;
    assert_eq!(carol.get(&partner_app).await.status(), 200);

    let carol_id: String = sqlx::query_scalar("SELECT id::text FROM users WHERE email = 'carol@example.com'")
        .fetch_one(&alice.pool)
        .await
        .unwrap();
    let html = alice.get("/team").await.text().await.unwrap();
    let res = alice.post_form(&format!("/team/members/{carol_id}/remove"), &[("csrf_token", &csrf_from(&html))]).await;
    assert_eq!(location(&res), "/team");

    // Her stored choice still names Partner Co, and grants nothing there.
    let chosen: String = sqlx::query_scalar(
        "SELECT a.name FROM users u JOIN accounts a ON a.id = u.current_account_id WHERE u.email = 'carol@example.com'",
    )
    .fetch_one(&alice.pool)
    .await
    .unwrap();
    assert_eq!(chosen, "Partner Co");
    let team = carol.get("/team").await.text().await.unwrap();
    assert_eq!(current_organisation(&team), "Carol Ltd");
    assert!(!team.contains("alice@example.com") && !team.contains("organisation-switch"), "{team}");
    assert_eq!(carol.get(&partner_app).await.status(), 404);
    assert_eq!(carol.get(&carol_app).await.status(), 200);
    let res = carol
        .post_form(
            "/organisation",
            &[("csrf_token", &csrf_from(&team)), ("account", &account_id(&alice.pool, "Partner Co").await)],
        )
        .await;
    assert_eq!(res.status(), 404);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn leaving_one_of_several_organisations_goes_on_in_another(pool: PgPool) {
    let (_alice, carol, partner_app, carol_app) = carol_joins_partner_co(pool).await;
    let carol_id: String = sqlx::query_scalar("SELECT id::text FROM users WHERE email = 'carol@example.com'")
        .fetch_one(&carol.pool)
        .await
        .unwrap();
    let team = carol.get("/team").await.text().await.unwrap();
    let res = carol.post_form(&format!("/team/members/{carol_id}/remove"), &[("csrf_token", &csrf_from(&team))]).await;
    assert_eq!(location(&res), "/dashboard", "still signed in, in Carol Ltd");
    let dashboard = carol.get("/dashboard").await.text().await.unwrap();
    assert!(dashboard.contains("You left Partner Co. You now work in Carol Ltd."), "{dashboard}");
    assert_eq!(current_organisation(&dashboard), "Carol Ltd");
    assert_eq!(carol.get(&partner_app).await.status(), 404);
    assert_eq!(carol.get(&carol_app).await.status(), 200);
}

/// Someone removed from their only organisation was left with a dashboard offering
/// "Register an application" that led to a 404. They now create an organisation, as anyone
/// may who works for several (up to a bound).
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn someone_in_no_organisation_creates_one_and_anyone_may_create_more(pool: PgPool) {
    let app = spawn_app(pool).await;
    verified_developer(&app, "solo@example.com").await;
    sqlx::query("DELETE FROM memberships WHERE user_id = (SELECT id FROM users WHERE email = 'solo@example.com')")
        .execute(&app.pool)
        .await
        .unwrap();
    let dashboard = app.get("/dashboard").await.text().await.unwrap();
    assert!(dashboard.contains("data-testid=\"no-organisation\"") && !dashboard.contains("/apps/new"), "{dashboard}");

    let form = app.get("/organisations/new").await.text().await.unwrap();
    let create = |name: &'static str| {
        let token = csrf_from(&form);
        let app = &app;
        async move { app.post_form("/organisations", &[("csrf_token", token.as_str()), ("name", name)]).await }
    };
    let res = create("  ").await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(page.contains("aria-invalid=\"true\"") && page.contains("organisation&#39;s name"), "{page}");

    let res = create("Solo Works").await;
    assert_eq!(location(&res), "/dashboard");
    let dashboard = app.get("/dashboard").await.text().await.unwrap();
    assert_eq!(current_organisation(&dashboard), "Solo Works");
    assert!(dashboard.contains("You created Solo Works") && !dashboard.contains("no-organisation"), "{dashboard}");
    assert_eq!(app.get("/apps/new").await.status(), 200, "they can register applications again");
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'account.create' AND actor_label = 'solo@example.com'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);

    // A second one: they work in it, and the header offers the switch between the two.
    assert_eq!(location(&create("Second Co").await), "/dashboard");
    let dashboard = app.get("/dashboard").await.text().await.unwrap();
    assert_eq!(current_organisation(&dashboard), "Second Co");
    assert!(dashboard.contains("data-testid=\"organisation-switch\""), "{dashboard}");

    // Up to 20 owned at once.
    for _ in 2..20 {
        assert_eq!(create("Another Co").await.status(), 303);
    }
    let res = create("One too many").await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("the most one person may"));

    // Provider admins belong to the provider, not to developer organisations.
    seed(&app.pool).await.unwrap();
    let admin = TestApp { base: app.base.clone(), pool: app.pool.clone(), client: client() };
    admin.sign_in(tollgate::cli::dev::DEMO_ADMIN_EMAIL, tollgate::cli::dev::DEMO_ADMIN_PASSWORD).await;
    assert_eq!(admin.get("/organisations/new").await.status(), 404);
    let token = admin.csrf_token("/profile").await;
    let res = admin.post_form("/organisations", &[("csrf_token", token.as_str()), ("name", "Admin Co")]).await;
    assert_eq!(res.status(), 404);
}

/// One open invitation per address: a new one replaces the one before (its link stops
/// working), joining closes any other, and removing a member withdraws what is still open
/// for their address, so nobody removed can walk back in with an old link. Addresses match
/// as the database matches them (case included), and a provider admin cannot join.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn no_invitation_outlives_the_membership_it_was_for(pool: PgPool) {
    seed(&pool).await.unwrap();
    let owner = spawn_app_with(pool, &[("TOLLGATE_MAIL_ADDRESS_COOLDOWN_SECONDS", "0")]).await;
    verified_developer(&owner, "owner@example.com").await;
    let invite = |email: &'static str| {
        let owner = &owner;
        async move {
            let token = owner.csrf_token("/team").await;
            let form = [("csrf_token", token.as_str()), ("email", email), ("role", "owner")];
            assert_eq!(owner.post_form("/team/invite", &form).await.status(), 303);
            let (_, body) = last_mail(&owner.pool, email).await;
            link_token(&body, "/invitations/accept")
        }
    };
    let members = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email = 'bob@example.com'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };

    let first = invite("bob@example.com").await;
    let second = invite("bob@example.com").await;
    let bob = TestApp { base: owner.base.clone(), pool: owner.pool.clone(), client: client() };
    assert!(link_is_dead(&bob, &first).await, "the replaced link no longer works");
    assert_eq!(location(&accept(&bob, second, Some("bob passphrase 1")).await), "/team");
    assert_eq!(members(owner.pool.clone()).await, 1);

    // An invitation left open from before (as this platform once allowed): removal withdraws it.
    let leftover = "left-over-invitation-token-0123456789";
    sqlx::query(
        "INSERT INTO invitations (id, account_id, email, role, token_hash, expires_at)
         SELECT gen_random_uuid(), m.account_id, 'BOB@example.com', 'owner', $1, now() + interval '1 day'
         FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email = 'owner@example.com'",
    )
    .bind(tollgate_core::secrets::token_hash(leftover))
    .execute(&owner.pool)
    .await
    .unwrap();
    let bob_id: String = sqlx::query_scalar("SELECT id::text FROM users WHERE email = 'bob@example.com'")
        .fetch_one(&owner.pool)
        .await
        .unwrap();
    let token = owner.csrf_token("/team").await;
    let res = owner.post_form(&format!("/team/members/{bob_id}/remove"), &[("csrf_token", token.as_str())]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(members(owner.pool.clone()).await, 0);
    assert!(link_is_dead(&bob, leftover).await, "the removed member cannot get back in");

    // Invited in upper case, signed in as the lower-case address: it is theirs.
    let again = invite("BOB@Example.com").await;
    assert_eq!(location(&accept(&bob, again, None).await), "/team");
    assert_eq!(members(owner.pool.clone()).await, 1);

    // A provider admin's address: the invitation cannot be accepted by the admin.
    let admin = TestApp { base: owner.base.clone(), pool: owner.pool.clone(), client: client() };
    admin.sign_in(tollgate::cli::dev::DEMO_ADMIN_EMAIL, tollgate::cli::dev::DEMO_ADMIN_PASSWORD).await;
    let for_admin = invite(tollgate::cli::dev::DEMO_ADMIN_EMAIL).await;
    let res = accept(&admin, for_admin, None).await;
    assert_eq!(res.status(), 409);
    let joined: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.is_admin
         AND m.account_id = (SELECT account_id FROM memberships m2 JOIN users o ON o.id = m2.user_id WHERE o.email = 'owner@example.com')",
    )
    .fetch_one(&owner.pool)
    .await
    .unwrap();
    assert_eq!(joined, 0);
}

/// Accepts an invitation in `app`'s browser (choosing `password` when not signed in).
async fn accept(app: &TestApp, token: String, password: Option<&str>) -> reqwest::Response {
    let page = app.get(&format!("/invitations/accept?token={token}")).await.text().await.unwrap();
    let csrf = csrf_from(&page);
    let mut form = vec![("csrf_token", csrf.as_str()), ("token", token.as_str())];
    if let Some(password) = password {
        form.push(("password", password));
    }
    app.post_form("/invitations/accept", &form).await
}

/// Whether an invitation link opens the page that says it no longer works.
async fn link_is_dead(app: &TestApp, token: &str) -> bool {
    let page = app.get(&format!("/invitations/accept?token={token}")).await.text().await.unwrap();
    page.contains("This invitation no longer works")
}

/// The organisation a user acts for is the user's, shared by every tab: a team page shown
/// for Partner Co, then a switch to Carol Ltd in another tab, and the first tab's "remove"
/// would have removed alice from Carol Ltd (and "new application" made one there). Such a
/// form is refused with 409, and nothing changes in either organisation.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_form_shown_for_one_organisation_is_refused_after_another_tab_switched(pool: PgPool) {
    let (_alice, carol, _, _) = carol_joins_partner_co(pool).await;
    let first_tab = carol.get("/team").await.text().await.unwrap();
    assert_eq!(current_organisation(&first_tab), "Partner Co");
    let partner_co = account_id(&carol.pool, "Partner Co").await;
    assert!(first_tab.contains(&format!(r#"name="acting_for" value="{partner_co}""#)), "{first_tab}");
    let new_app_page = carol.get("/apps/new").await.text().await.unwrap();

    // Another tab switches to Carol Ltd.
    let carol_ltd = account_id(&carol.pool, "Carol Ltd").await;
    let res =
        carol.post_form("/organisation", &[("csrf_token", &csrf_from(&first_tab)), ("account", &carol_ltd)]).await;
    assert_eq!(location(&res), "/dashboard");

    let invite = [
        ("csrf_token", csrf_from(&first_tab)),
        ("acting_for", partner_co.clone()),
        ("email", "dave@example.com".to_owned()),
        ("role", "member".to_owned()),
    ];
    let invite: Vec<(&str, &str)> = invite.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = carol.post_form("/team/invite", &invite).await;
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("you switched organisation"));
    let new_app = [
        ("csrf_token", csrf_from(&new_app_page)),
        ("acting_for", partner_co),
        ("name", "Meant for Partner Co".to_owned()),
        ("description", String::new()),
    ];
    let new_app: Vec<(&str, &str)> = new_app.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(carol.post_form("/apps/new", &new_app).await.status(), 409);
    let (invitations, apps): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM invitations WHERE email = 'dave@example.com'),
                (SELECT count(*) FROM applications WHERE name = 'Meant for Partner Co')",
    )
    .fetch_one(&carol.pool)
    .await
    .unwrap();
    assert_eq!((invitations, apps), (0, 0));

    // Reloaded, the page acts for Carol Ltd.
    let reloaded = carol.get("/team").await.text().await.unwrap();
    assert!(reloaded.contains(&format!(r#"name="acting_for" value="{carol_ltd}""#)));
}

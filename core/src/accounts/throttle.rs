//! The throttles of the public account flows, kept in Postgres so every
//! replica applies the same ones:
//!
//! * sign-in failures per (user, client address), with a growing pause, so
//!   guessing is slow and a stranger's failures never lock the user out at
//!   their own address; and per client address over all accounts, so one
//!   address cannot spray a common password over many of them;
//! * for the flows that mail an address someone typed (sign-up, a new
//!   verification link, a password reset, an invitation, a change of
//!   address): a budget of
//!   requests per client address and hour, and a cooldown per address
//!   during which no further mail goes to it.
//!
//! Neither depends on whether the address has an account, so neither
//! answers that question.

use std::fmt;
use std::net::IpAddr;

use time::{Duration, OffsetDateTime};

use super::{Email, UserId};
use crate::secrets::{random_token, token_hash};
use crate::stored::stored_enum;
use crate::{Error, Result};

/// Where a request came from, as the web layer determined it (the peer, or
/// the client a trusted proxy names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(IpAddr);

impl ClientAddress {
    pub fn new(ip: IpAddr) -> ClientAddress {
        ClientAddress(ip.to_canonical())
    }

    pub fn ip(&self) -> IpAddr {
        self.0
    }

    /// What throttles count by: an IPv4 address, or the /64 of an IPv6 one,
    /// since one host commonly holds a whole /64.
    pub fn key(&self) -> String {
        match self.0 {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        }
    }
}

impl fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

// ------------------------------------------------------------------ sign-in

/// Failed sign-ins allowed from one client before the growing pause starts.
const FREE_FAILURES: i32 = 5;
/// The first pause; each further failure doubles it.
const FIRST_PAUSE_SECS: i64 = 30;
/// The longest pause a run of failures can impose.
const MAX_PAUSE_SECS: i64 = 15 * 60;

/// When sign-in for `user` from `client` is paused, if it is.
pub(crate) async fn sign_in_paused_until(
    pool: &sqlx::PgPool,
    user: UserId,
    client: &ClientAddress,
) -> Result<Option<OffsetDateTime>> {
    let until = sqlx::query_scalar!(
        "SELECT locked_until FROM sign_in_failures WHERE user_id = $1 AND client = $2 AND locked_until > now()",
        user.0,
        client.key()
    )
    .fetch_optional(pool)
    .await?;
    Ok(until.flatten())
}

/// Counts a failure of `user` from `client`; from the sixth on, sign-in
/// from there pauses for 30 s, 60 s, 2 min … up to 15 min.
pub(crate) async fn record_sign_in_failure(pool: &sqlx::PgPool, user: UserId, client: &ClientAddress) -> Result<()> {
    let failures = sqlx::query_scalar!(
        "INSERT INTO sign_in_failures (user_id, client, failures) VALUES ($1, $2, 1)
         ON CONFLICT (user_id, client) DO UPDATE SET failures = sign_in_failures.failures + 1, updated_at = now()
         RETURNING failures",
        user.0,
        client.key()
    )
    .fetch_one(pool)
    .await?;
    if failures >= FREE_FAILURES {
        let doublings = (failures - FREE_FAILURES).clamp(0, 10);
        let pause = Duration::seconds((FIRST_PAUSE_SECS << doublings).min(MAX_PAUSE_SECS));
        sqlx::query!(
            "UPDATE sign_in_failures SET locked_until = $3 WHERE user_id = $1 AND client = $2",
            user.0,
            client.key(),
            OffsetDateTime::now_utc() + pause
        )
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// A successful sign-in from `client` starts its count afresh.
pub(crate) async fn clear_sign_in_failures(pool: &sqlx::PgPool, user: UserId, client: &ClientAddress) -> Result<()> {
    sqlx::query!("DELETE FROM sign_in_failures WHERE user_id = $1 AND client = $2", user.0, client.key())
        .execute(pool)
        .await?;
    Ok(())
}

/// Failed sign-ins one client address may make in an hour, over every account it names
/// (known or not): enough for a crowd behind one NAT to mistype, too few to spray a password
/// over many accounts.
pub const CLIENT_FAILURE_BUDGET: i32 = 30;
const CLIENT_WINDOW: Duration = Duration::hours(1);

/// How long `client` must wait before its next sign-in, once its hour's failures are spent.
pub(crate) async fn client_paused_for(pool: &sqlx::PgPool, client: &ClientAddress) -> Result<Option<Duration>> {
    let window_start = sqlx::query_scalar!(
        "SELECT window_start FROM sign_in_client_failures
         WHERE client = $1 AND failures >= $2 AND window_start > now() - make_interval(secs => $3)",
        client.key(),
        CLIENT_FAILURE_BUDGET,
        CLIENT_WINDOW.as_seconds_f64()
    )
    .fetch_optional(pool)
    .await?;
    Ok(window_start.map(|start| start + CLIENT_WINDOW - OffsetDateTime::now_utc()))
}

/// Counts a failed sign-in from `client`, for whichever email it named.
pub(crate) async fn record_client_failure(pool: &sqlx::PgPool, client: &ClientAddress) -> Result<()> {
    sqlx::query!(
        "INSERT INTO sign_in_client_failures (client, failures) VALUES ($1, 1)
         ON CONFLICT (client) DO UPDATE SET
             failures = CASE WHEN sign_in_client_failures.window_start > now() - make_interval(secs => $2)
                             THEN sign_in_client_failures.failures + 1 ELSE 1 END,
             window_start = CASE WHEN sign_in_client_failures.window_start > now() - make_interval(secs => $2)
                                 THEN sign_in_client_failures.window_start ELSE now() END",
        client.key(),
        CLIENT_WINDOW.as_seconds_f64()
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// How long a browser stays known to a user's sign-in.
pub const DEVICE_LIFETIME: Duration = Duration::days(180);
/// Browsers kept per user: the newest, so a user who clears cookies often pushes out the oldest.
const DEVICES_PER_USER: i64 = 20;

/// Whether `device` (a browser's device cookie) is one `email`'s user signed in from, or set a
/// new password in: such a browser is not held by its network's spent budget of failures.
pub(crate) async fn is_known_device(pool: &sqlx::PgPool, device: Option<&str>, email: &str) -> Result<bool> {
    let Some(device) = device.filter(|d| !d.is_empty() && d.len() <= 64) else { return Ok(false) };
    let known = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM sign_in_devices d JOIN users u ON u.id = d.user_id
                          WHERE d.token_hash = $1 AND u.email = $2::citext AND d.expires_at > now()) AS "known!""#,
        token_hash(device),
        email.trim() as _
    )
    .fetch_one(pool)
    .await?;
    Ok(known)
}

/// Remembers this browser for `user`: `None` when `device` already is one of theirs, else the
/// new cookie value to set. Only a browser that proved the password or the mailbox gets one.
pub async fn remember_device(pool: &sqlx::PgPool, user: UserId, device: Option<&str>) -> Result<Option<String>> {
    if let Some(device) = device.filter(|d| !d.is_empty() && d.len() <= 64) {
        let renewed = sqlx::query!(
            "UPDATE sign_in_devices SET expires_at = $3 WHERE token_hash = $1 AND user_id = $2 AND expires_at > now()",
            token_hash(device),
            user.0,
            OffsetDateTime::now_utc() + DEVICE_LIFETIME
        )
        .execute(pool)
        .await?;
        if renewed.rows_affected() == 1 {
            return Ok(None);
        }
    }
    let raw = random_token();
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "INSERT INTO sign_in_devices (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
        token_hash(&raw),
        user.0,
        OffsetDateTime::now_utc() + DEVICE_LIFETIME
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "DELETE FROM sign_in_devices WHERE user_id = $1 AND (expires_at <= now() OR token_hash NOT IN
             (SELECT token_hash FROM sign_in_devices WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2))",
        user.0,
        DEVICES_PER_USER
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(raw))
}

/// A new password (from a reset link) lifts every pause of the user.
pub(crate) async fn lift_sign_in_pauses(conn: &mut sqlx::PgConnection, user: UserId) -> Result<()> {
    sqlx::query!("DELETE FROM sign_in_failures WHERE user_id = $1", user.0).execute(conn).await?;
    Ok(())
}

// --------------------------------------------------------------------- mail

stored_enum! {
    /// A request that mails an address someone typed.
    pub enum MailRequestKind as "mail_request_kind" {
        SignUp = "sign_up",
        Verification = "verification",
        PasswordReset = "password_reset",
        Invitation = "invitation",
        EmailChange = "email_change",
    }
}

/// The mail throttles' settings.
#[derive(Debug, Clone, Copy)]
pub struct MailLimits {
    /// Requests that name an address to mail, per client address and hour.
    pub per_client_per_hour: u32,
    /// After a mail to an address, how long no other goes to it.
    pub address_cooldown: std::time::Duration,
}

impl Default for MailLimits {
    fn default() -> Self {
        MailLimits { per_client_per_hour: 20, address_cooldown: std::time::Duration::from_secs(120) }
    }
}

/// Whether the flow may mail the address now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailAdmission {
    /// Go ahead; the address's cooldown starts now.
    Send,
    /// The address had a request within its cooldown: answer as usual, mail nothing.
    Quiet,
}

const BUDGET_WINDOW: Duration = Duration::hours(1);

/// Admits a request that would mail `address`, counting it against the
/// client's budget: `Err(RateLimited)` when the budget is spent, `Quiet`
/// inside the address's cooldown, else `Send`. Requests for unknown
/// addresses count and cool down just like others, so the outcome says
/// nothing about who has an account.
pub async fn admit_mail(
    pool: &sqlx::PgPool,
    limits: &MailLimits,
    kind: MailRequestKind,
    client: &ClientAddress,
    address: &Email,
) -> Result<MailAdmission> {
    let client = client.key();
    let address_hash = token_hash(&address.as_str().to_lowercase());
    let mut tx = pool.begin().await?;
    // One decision at a time per client, then per address (always in this
    // order, so two requests never wait on each other in a circle).
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtext('mail-client:' || $1))", client).execute(&mut *tx).await?;
    let window_start = OffsetDateTime::now_utc() - BUDGET_WINDOW;
    let recent = sqlx::query!(
        r#"SELECT count(*) AS "count!", min(created_at) AS oldest FROM mail_requests WHERE client = $1 AND created_at > $2"#,
        client,
        window_start
    )
    .fetch_one(&mut *tx)
    .await?;
    if recent.count >= i64::from(limits.per_client_per_hour) {
        let frees_at = recent.oldest.unwrap_or_else(OffsetDateTime::now_utc) + BUDGET_WINDOW;
        let retry_after = (frees_at - OffsetDateTime::now_utc()).max(Duration::seconds(1));
        return Err(Error::RateLimited { retry_after: retry_after.unsigned_abs() });
    }
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtext('mail-address:' || encode($1, 'hex')))", address_hash)
        .execute(&mut *tx)
        .await?;
    let cooldown = Duration::try_from(limits.address_cooldown).unwrap_or(Duration::minutes(2));
    let cooling = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM mail_requests WHERE address_hash = $1 AND opens_cooldown AND created_at > $2) AS "cooling!""#,
        address_hash,
        OffsetDateTime::now_utc() - cooldown
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO mail_requests (kind, client, address_hash, opens_cooldown) VALUES ($1, $2, $3, $4)",
        kind as MailRequestKind,
        client,
        address_hash,
        !cooling
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(if cooling { MailAdmission::Quiet } else { MailAdmission::Send })
}

/// Forgets throttle records no throttle looks at any more; run periodically.
pub async fn purge_old(pool: &sqlx::PgPool) -> Result<u64> {
    let mail =
        sqlx::query!("DELETE FROM mail_requests WHERE created_at < now() - interval '1 day'").execute(pool).await?;
    let sign_in = sqlx::query!(
        "DELETE FROM sign_in_failures WHERE updated_at < now() - interval '1 day' AND (locked_until IS NULL OR locked_until < now())"
    )
    .execute(pool)
    .await?;
    let clients = sqlx::query!("DELETE FROM sign_in_client_failures WHERE window_start < now() - interval '1 day'")
        .execute(pool)
        .await?;
    Ok(mail.rows_affected() + sign_in.rows_affected() + clients.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a = ClientAddress::new("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientAddress::new("2001:db8:1:2:bbbb::9".parse().unwrap());
        assert_eq!(a.key(), b.key());
        assert_eq!(a.key(), "2001:db8:1:2::/64");
        let mapped = ClientAddress::new("::ffff:203.0.113.7".parse().unwrap());
        assert_eq!(mapped.key(), "203.0.113.7");
    }
}

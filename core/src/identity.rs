//! Sign-in with external OAuth2 / OpenID Connect providers, using the
//! authorization-code flow with PKCE (S256) and a state check.
//!
//! A provider's first sign-in for a person creates their developer account;
//! later sign-ins find them by the provider's subject id, and a person who
//! already has a password account is linked by *verified* email only, so an
//! unverified address at a provider cannot take over an account here.

use std::future::Future;
use std::pin::Pin;

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest, HttpResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde_json::json;
use sqlx::PgPool;

use crate::accounts::{Email, UserId, UserSummary, create_developer_in, find_user};
use crate::audit::{self, Actor, Entry};
use crate::{Error, Result};

/// One configured provider, as the operator wrote it in the settings.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Used in URLs: `/auth/<id>`.
    pub id: String,
    /// Shown on the button: "Sign in with <name>".
    pub name: String,
    pub client_id: String,
    pub client_secret: String,
    pub auth_url: String,
    pub token_url: String,
    pub userinfo_url: String,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into(), "profile".into()]
}

impl ProviderConfig {
    /// Checks what can be checked before the first sign-in.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(format!("provider id `{}`: use lower-case letters, digits, - and _", self.id));
        }
        for (field, url) in
            [("auth_url", &self.auth_url), ("token_url", &self.token_url), ("userinfo_url", &self.userinfo_url)]
        {
            let Ok(parsed) = oauth2::url::Url::parse(url) else {
                return Err(format!("provider {}: {field} `{url}` is not a URL", self.id));
            };
            // The client secret, the code and the tokens travel to these: in clear text only
            // to this machine itself (a stand-in provider in tests and development).
            let loopback = match parsed.host() {
                Some(oauth2::url::Host::Domain(name)) => name == "localhost",
                Some(oauth2::url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(oauth2::url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
                return Err(format!(
                    "provider {}: {field} `{url}` must be https:// (http:// only to this machine)",
                    self.id
                ));
            }
        }
        Ok(())
    }
}

/// The person a provider vouched for.
#[derive(Debug, Clone)]
pub struct ExternalIdentity {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
}

/// What the browser is sent to, and what must be kept (server-side) to
/// finish the flow.
pub struct Started {
    pub authorize_url: String,
    pub state: String,
    pub pkce_verifier: String,
}

type Client = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    oauth2::basic::BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

fn client(provider: &ProviderConfig, redirect_url: &str) -> Result<Client> {
    let bad =
        |what: &str, e: oauth2::url::ParseError| Error::Internal(format!("provider {}: {what}: {e}", provider.id));
    Ok(BasicClient::new(ClientId::new(provider.client_id.clone()))
        .set_client_secret(ClientSecret::new(provider.client_secret.clone()))
        .set_auth_uri(AuthUrl::new(provider.auth_url.clone()).map_err(|e| bad("auth_url", e))?)
        .set_token_uri(TokenUrl::new(provider.token_url.clone()).map_err(|e| bad("token_url", e))?)
        .set_redirect_uri(RedirectUrl::new(redirect_url.to_owned()).map_err(|e| bad("redirect", e))?))
}

pub fn start(provider: &ProviderConfig, redirect_url: &str) -> Result<Started> {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let client = client(provider, redirect_url)?;
    let mut request = client.authorize_url(CsrfToken::new_random).set_pkce_challenge(challenge);
    for scope in &provider.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, state) = request.url();
    Ok(Started {
        authorize_url: url.to_string(),
        state: state.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
    })
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// oauth2's requests, sent with our own reqwest (one HTTP stack in the binary).
type HttpFuture = Pin<Box<dyn Future<Output = std::result::Result<HttpResponse, HttpError>>>>;

fn http_client(http: &reqwest::Client) -> impl Fn(HttpRequest) -> HttpFuture {
    let http = http.clone();
    move |request: HttpRequest| {
        let http = http.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| HttpError(e.to_string()))?;
            let mut builder = oauth2::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let bytes = response.bytes().await.map_err(|e| HttpError(e.to_string()))?;
            builder.body(bytes.to_vec()).map_err(|e| HttpError(e.to_string()))
        })
    }
}

#[derive(serde::Deserialize)]
struct UserInfo {
    sub: String,
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
}

/// Exchanges the code (with the PKCE verifier) and reads the userinfo.
pub async fn finish(
    provider: &ProviderConfig,
    redirect_url: &str,
    code: &str,
    pkce_verifier: &str,
    http: &reqwest::Client,
) -> Result<ExternalIdentity> {
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        Error::invalid("provider", format!("{} did not complete the sign-in ({what}): {e}", provider.name))
    };
    let client = client(provider, redirect_url)?;
    let token = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
        .request_async(&http_client(http))
        .await
        .map_err(|e| failed("token exchange", &e))?;
    let info: UserInfo = http
        .get(&provider.userinfo_url)
        .bearer_auth(token.access_token().secret())
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| failed("userinfo", &e))?
        .json()
        .await
        .map_err(|e| failed("userinfo", &e))?;
    // Some providers send `"true"` as a string.
    let email_verified = matches!(&info.email_verified, Some(serde_json::Value::Bool(true)))
        || matches!(&info.email_verified, Some(serde_json::Value::String(s)) if s == "true");
    Ok(ExternalIdentity { subject: info.sub, email: info.email, email_verified })
}

/// Finds or creates the local user for an external identity.
pub async fn sign_in_external(
    pool: &PgPool,
    provider: &ProviderConfig,
    identity: &ExternalIdentity,
) -> Result<UserSummary> {
    if identity.subject.is_empty() || identity.subject.len() > 255 {
        return Err(Error::invalid("provider", format!("{} sent an unusable subject id", provider.name)));
    }
    let mut tx = pool.begin().await?;
    let linked = sqlx::query_scalar!(
        "SELECT user_id FROM identity_links WHERE provider = $1 AND subject = $2",
        provider.id,
        identity.subject
    )
    .fetch_optional(&mut *tx)
    .await?;
    let user = match linked {
        Some(user) => {
            refuse_admin(&mut tx, provider, user).await?;
            UserId(user)
        }
        None => {
            let email = match (&identity.email, identity.email_verified) {
                (Some(email), true) => Email::parse(email)?,
                _ => {
                    return Err(Error::invalid(
                        "provider",
                        format!(
                            "{} did not confirm a verified email address, which Tollgate needs to create or link an account",
                            provider.name
                        ),
                    ));
                }
            };
            let existing = sqlx::query_scalar!("SELECT id FROM users WHERE email = $1::citext", email.as_str() as _)
                .fetch_optional(&mut *tx)
                .await?;
            let user = match existing {
                Some(id) => {
                    refuse_admin(&mut tx, provider, id).await?;
                    // The provider proved the mailbox, so the email counts as verified here too.
                    // A user never verified was made by whoever typed the address, not by the
                    // mailbox's owner: that password and any session must not survive the link.
                    let unverified = sqlx::query_scalar!(
                        r#"SELECT email_verified_at IS NULL AS "unverified!" FROM users WHERE id = $1 FOR UPDATE"#,
                        id
                    )
                    .fetch_one(&mut *tx)
                    .await?;
                    if unverified {
                        sqlx::query!(
                            "UPDATE users SET password_hash = NULL, email_verified_at = now() WHERE id = $1",
                            id
                        )
                        .execute(&mut *tx)
                        .await?;
                        sqlx::query!("DELETE FROM sessions WHERE user_id = $1", id).execute(&mut *tx).await?;
                    }
                    UserId(id)
                }
                None => {
                    let organisation = format!("{}'s team", email.as_str().split('@').next().unwrap_or("New"));
                    create_developer_in(&mut tx, &organisation, &email, None, true).await?.1
                }
            };
            sqlx::query!(
                "INSERT INTO identity_links (provider, subject, user_id) VALUES ($1, $2, $3)",
                provider.id,
                identity.subject,
                user.0
            )
            .execute(&mut *tx)
            .await?;
            audit::record(
                &mut tx,
                &Actor::user(user, email.as_str()),
                Entry {
                    action: "identity.link",
                    entity: "user",
                    entity_id: Some(user.0),
                    before: None,
                    after: Some(json!({"provider": provider.id})),
                },
            )
            .await?;
            user
        }
    };
    tx.commit().await?;
    find_user(pool, user).await?.ok_or(Error::NotFound)
}

/// Provider admins sign in with their password: a provider (a social login, a directory
/// anyone can join) vouching for an admin's address must not open the admin pages.
async fn refuse_admin(tx: &mut sqlx::PgConnection, provider: &ProviderConfig, user: uuid::Uuid) -> Result<()> {
    let admin = sqlx::query_scalar!("SELECT is_admin FROM users WHERE id = $1", user).fetch_optional(&mut *tx).await?;
    if admin == Some(true) {
        return Err(Error::invalid(
            "provider",
            format!(
                "this address belongs to a provider administrator, who signs in with a password, not through {}",
                provider.name
            ),
        ));
    }
    Ok(())
}

/// The configured providers and the HTTP client that talks to them.
#[derive(Clone, Default)]
pub struct Providers {
    pub list: Vec<ProviderConfig>,
    pub http: reqwest::Client,
}

impl Providers {
    pub fn new(list: Vec<ProviderConfig>) -> Providers {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Providers { list, http }
    }

    pub fn get(&self, id: &str) -> Option<&ProviderConfig> {
        self.list.iter().find(|p| p.id == id)
    }
}

/// HTTPS to providers uses rustls with ring, the one crypto backend of the
/// binary (sqlx uses it too). Installing twice is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

//! `Password` (validated at the edge: length, not a common password) and the
//! argon2id `PasswordHasher`, which hashes off the async workers behind a semaphore.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _, phc::PasswordHash};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::Error;

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;

static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("common-passwords.txt").lines().map(str::trim).filter(|l| !l.is_empty()).collect());

/// A password that meets the policy: 8 to 128 characters and not a common one.
/// Its Debug output never shows the secret.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Password, Error> {
        let chars = raw.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err(Error::invalid("password", format!("use at least {MIN_PASSWORD_CHARS} characters")));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(Error::invalid("password", format!("use at most {MAX_PASSWORD_CHARS} characters")));
        }
        if COMMON_PASSWORDS.contains(raw.to_lowercase().as_str()) {
            return Err(Error::invalid("password", "this password is too common; choose another"));
        }
        Ok(Password(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Hashes and verifies passwords with argon2id at OWASP parameters
/// (m = 19 MiB, t = 2, p = 1), off the async workers and with a cap on how
/// many run at once, so a burst of sign-ins cannot exhaust memory or stall
/// the server.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// argon2 computations done, hashes and verifications alike.
    computations: Arc<AtomicU64>,
}

/// Verified against when the user does not exist, so that unknown and known
/// emails take the same time.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash_blocking("tollgate-timing-equaliser").unwrap_or_default());

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &str) -> Result<String, Error> {
    argon2()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
}

fn verify_blocking(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

impl PasswordHasher {
    /// `max_concurrent` bounds memory: each hash holds 19 MiB while it runs.
    pub fn new(max_concurrent: usize) -> Self {
        PasswordHasher { permits: Arc::new(Semaphore::new(max_concurrent.max(1))), computations: Arc::default() }
    }

    /// How many argon2 computations this hasher (and its clones) has done:
    /// how tests check that every sign-in path does the same work.
    pub fn computations(&self) -> u64 {
        self.computations.load(Ordering::Relaxed)
    }

    pub async fn hash(&self, password: &Password) -> Result<String, Error> {
        let _permit = self.permits.acquire().await.map_err(|e| Error::Internal(e.to_string()))?;
        let password = password.0.clone();
        self.computations.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || hash_blocking(&password))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
    }

    /// True when `candidate` matches `stored`. With no stored hash it still
    /// does the full amount of work and answers false.
    pub async fn verify(&self, candidate: &str, stored: Option<&str>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else { return false };
        let candidate = candidate.to_owned();
        let stored = stored.map(str::to_owned);
        self.computations.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || match stored {
            Some(phc) => verify_blocking(&candidate, &phc),
            None => {
                verify_blocking(&candidate, &DUMMY_HASH);
                false
            }
        })
        .await
        .unwrap_or(false)
    }
}

impl Default for PasswordHasher {
    fn default() -> Self {
        PasswordHasher::new(4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_rejects_short_long_and_common_passwords() {
        assert!(Password::parse("short1").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert!(Password::parse("Password123").is_err());
        assert!(Password::parse(&"y".repeat(128)).is_ok());
        assert!(Password::parse("correct horse battery").is_ok());
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let p = Password::parse("correct horse battery").unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hasher = PasswordHasher::new(2);
        let p = Password::parse("correct horse battery").unwrap();
        let phc = hasher.hash(&p).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(hasher.verify("correct horse battery", Some(&phc)).await);
        assert!(!hasher.verify("wrong horse battery", Some(&phc)).await);
        assert!(!hasher.verify("correct horse battery", None).await);
    }
}

//! `tollgate admin create` and `tollgate admin token`: provider admins and their API tokens.

use std::io::{BufRead, IsTerminal};

use time::{Duration, OffsetDateTime};
use tollgate_core::accounts::{Email, Password, PasswordHasher, create_admin};
use tollgate_core::admin_tokens::{self, NewToken, TokenScope};
use tollgate_core::audit::Actor;

use super::database::connect;
use super::error::CliError;
use crate::settings::Settings;

fn read_password(from_stdin: bool) -> Result<String, CliError> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line)? == 0 {
            // No terminal to prompt on and nothing piped in (CI, `</dev/null`).
            return Err(CliError::Other(
                "no password: stdin is not a terminal and gave none; pipe one in, \
                 e.g. `printf '%s\\n' \"$PASSWORD\" | tollgate admin create --email E --password-stdin`"
                    .into(),
            ));
        }
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Repeat password: ")?;
    if first != second {
        return Err(CliError::Other("the passwords do not match".into()));
    }
    Ok(first)
}

pub async fn create(settings: &Settings, email: &str, password_stdin: bool) -> Result<(), CliError> {
    let email = Email::parse(email)?;
    let password = Password::parse(&read_password(password_stdin)?)?;
    let url = settings.require_database()?;
    let pool = connect(url, 2).await?;
    let hash = PasswordHasher::new(1).hash(&password).await?;
    let id = create_admin(&pool, &email, &hash).await?;
    println!("created admin {email} ({})", id.0);
    Ok(())
}

/// Prints a new admin API token for an existing admin.
pub async fn token(
    settings: &Settings,
    email: &str,
    name: &str,
    read_only: bool,
    expires_in_days: Option<u16>,
) -> Result<(), CliError> {
    let url = settings.require_database()?;
    let pool = connect(url, 2).await?;
    let owner = admin_tokens::admin_by_email(&pool, email).await?;
    let scope = if read_only { TokenScope::Read } else { TokenScope::Write };
    let expires_at = expires_in_days.map(|days| OffsetDateTime::now_utc() + Duration::days(days.into()));
    let terms = NewToken { name, scope, expires_at };
    let (_, secret) = admin_tokens::create(&pool, owner, terms, None, &Actor::system("cli")).await?;
    println!("{}", secret.as_str());
    eprintln!("use it as `Authorization: Bearer <token>` on /admin/api/v1; it is not shown again");
    Ok(())
}

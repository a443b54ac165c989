use std::io::{BufRead, IsTerminal};

use tollgate_core::accounts::{Email, Password, PasswordHasher, create_admin};

use super::{CliError, connect};
use crate::settings::Settings;

fn read_password(from_stdin: bool) -> Result<String, CliError> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
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

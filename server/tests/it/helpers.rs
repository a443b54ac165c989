//! What the server's tests share: `spawn_app()` on port 0, browser-like
//! clients, and reading CSRF tokens and cookies.

use std::net::TcpListener;

use reqwest::redirect::Policy;
use tollgate::settings::Settings;
use tollgate::startup;
use tollgate_core::accounts::PasswordHasher;
use tollgate_core::db::PgPool;

pub struct TestApp {
    pub base: String,
    pub pool: PgPool,
    /// A browser-like client: keeps cookies, does not follow redirects.
    pub client: reqwest::Client,
}

/// A write-scoped admin API token of the seeded demo admin, without an end.
pub async fn demo_admin_token(pool: &PgPool) -> tollgate_protocol::SecretKey {
    use tollgate_core::admin_tokens::{self, NewToken};
    let owner = admin_tokens::admin_by_email(pool, tollgate::cli::dev::DEMO_ADMIN_EMAIL).await.expect("the demo admin");
    let actor = tollgate_core::audit::Actor::system("test");
    admin_tokens::create(pool, owner, NewToken::write("tests"), None, &actor).await.expect("a token").1
}

/// Starts the server on a random port against the test's database.
pub async fn spawn_app(pool: PgPool) -> TestApp {
    spawn_app_with(pool, &[]).await
}

/// `spawn_app` with `TOLLGATE_*` settings, as if from the environment. The
/// public URL is the bound address, so links in mails and redirects work.
pub async fn spawn_app_with(pool: PgPool, vars: &[(&str, &str)]) -> TestApp {
    spawn_app_on(pool, TcpListener::bind("127.0.0.1:0").expect("bind a free port"), vars).await.0
}

/// Starts the server as `tollgate dev` builds it (with the development-only
/// pages such as the mail viewer), on a random port.
pub async fn spawn_dev_app(pool: PgPool) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    start(pool, listener, &[], startup::Mode::Dev).0
}

/// Starts the server on a given listener and returns a handle to stop it,
/// so a test can kill the management server and bring it back on the same port.
pub async fn spawn_app_on(
    pool: PgPool,
    listener: TcpListener,
    vars: &[(&str, &str)],
) -> (TestApp, actix_web::dev::ServerHandle) {
    let (app, handle, _) = start(pool, listener, vars, startup::Mode::Serve);
    (app, handle)
}

/// `spawn_app_with`, and the server's password hasher, to count its argon2 work.
pub async fn spawn_app_counting(pool: PgPool, vars: &[(&str, &str)]) -> (TestApp, PasswordHasher) {
    let (app, _, hasher) =
        start(pool, TcpListener::bind("127.0.0.1:0").expect("bind a free port"), vars, startup::Mode::Serve);
    (app, hasher)
}

fn start(
    pool: PgPool,
    listener: TcpListener,
    vars: &[(&str, &str)],
    mode: startup::Mode,
) -> (TestApp, actix_web::dev::ServerHandle, PasswordHasher) {
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let mut vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    vars.push(("TOLLGATE_PUBLIC_URL".into(), base.clone()));
    let settings = Settings::load_from(&move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
        .expect("settings");
    let app = startup::build(&settings, pool.clone(), listener, mode).expect("build the app");
    let handle = app.server.handle();
    tokio::spawn(app.server);
    (TestApp { base, pool, client: client() }, handle, app.hasher)
}

pub fn client() -> reqwest::Client {
    tollgate_core::identity::install_crypto_provider();
    reqwest::Client::builder().cookie_store(true).redirect(Policy::none()).build().expect("client")
}

/// A client without cookies that follows no redirects. reqwest needs the
/// process's rustls provider installed before any client is built, even for
/// plain HTTP, so every test client is made here.
pub fn plain_client() -> reqwest::Client {
    tollgate_core::identity::install_crypto_provider();
    reqwest::Client::builder().redirect(Policy::none()).build().expect("client")
}

impl TestApp {
    /// The same server seen from a second browser, with cookies of its own.
    pub fn another_browser(&self) -> TestApp {
        TestApp { base: self.base.clone(), pool: self.pool.clone(), client: client() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// The CSRF token of the form on a page.
    pub async fn csrf_token(&self, path: &str) -> String {
        let html = self.get(path).await.text().await.expect("page body");
        csrf_from(&html)
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client.post(self.url(path)).form(form).send().await.expect("POST")
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> reqwest::Response {
        let token = self.csrf_token("/login").await;
        self.post_form("/login", &[("csrf_token", &token), ("email", email), ("password", password)]).await
    }
}

pub fn csrf_from(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("page has a CSRF field") + marker.len();
    let end = html[start..].find('"').expect("closing quote") + start;
    html[start..end].to_owned()
}

/// The `Set-Cookie` header for the session cookie, if the response set one.
pub fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("tg_session="))
        .map(str::to_owned)
}

/// A URL for the test's own database, for running the binary against it.
pub async fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set by the test command");
    let name = pool.connect_options().get_database().expect("test database name").to_owned();
    let (prefix, query) = match base.split_once('?') {
        Some((p, q)) => (p.to_owned(), format!("?{q}")),
        None => (base.clone(), String::new()),
    };
    let server = prefix.rsplit_once('/').map(|(s, _)| s.to_owned()).unwrap_or(prefix);
    format!("{server}/{name}{query}")
}

/// The page with its CSRF token (if any) blanked, to compare two answers.
pub fn without_csrf(html: &str) -> String {
    match html.contains("name=\"csrf_token\" value=\"") {
        true => html.replace(&csrf_from(html), "TOKEN"),
        false => html.to_owned(),
    }
}

/// A published plan with no fees, limits or prices.
pub fn free_plan(system_name: impl Into<String>, name: impl Into<String>) -> tollgate_core::plans::NewPlan {
    tollgate_core::plans::NewPlan {
        system_name: system_name.into(),
        name: name.into(),
        description: String::new(),
        published: true,
        approval_required: false,
        setup_fee: Default::default(),
        monthly_fee: Default::default(),
        trial_days: 0,
        currency: "USD".into(),
        time_zone: "UTC".into(),
        limits: Vec::new(),
        pricing: Vec::new(),
        pricing_modes: Vec::new(),
    }
}

/// What the server answers to a request head alone, its body never sent.
pub async fn answer_to_head(app: &TestApp, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    // Bounded: a server waiting for the body never answers, and the test fails rather than hangs.
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut answer))
        .await
        .expect("answered from the head alone, without waiting for the body")
        .unwrap();
    String::from_utf8_lossy(&answer[..read]).into_owned()
}

//! A private Postgres cluster for `tollgate dev` and the test command, made
//! from the system's server binaries under `target/`, so a new user needs no
//! hand-made step. Postgres refuses to run as root, so as root the cluster is
//! owned by and run as the `postgres` user.

use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::error::CliError;

fn fail(message: impl Into<String>) -> CliError {
    CliError::Other(message.into())
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// The newest `initdb` on this machine: Debian keeps it off PATH.
fn find_bin_dir() -> Option<PathBuf> {
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    candidates.sort();
    if let Some((_, bin)) = candidates.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    })
}

/// Installs Debian's PostgreSQL package when run as root; otherwise says
/// exactly what to install.
fn install_or_explain() -> Result<PathBuf, CliError> {
    if !running_as_root() {
        return Err(fail(
            "no PostgreSQL server binaries found (initdb). Install them with `sudo apt-get install postgresql`, \
             or set TOLLGATE_DATABASE_URL to an existing database",
        ));
    }
    eprintln!("tollgate: PostgreSQL is not installed; installing Debian's postgresql package (one time)...");
    let update = Command::new("apt-get").args(["update", "-qq"]).status();
    let install = Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends", "postgresql"])
        .status();
    match (update, install) {
        (_, Ok(status)) if status.success() => {}
        (_, Ok(status)) => {
            return Err(fail(format!(
                "apt-get install postgresql failed ({status}); set TOLLGATE_DATABASE_URL instead"
            )));
        }
        (_, Err(err)) => {
            return Err(fail(format!("cannot run apt-get ({err}); install postgresql or set TOLLGATE_DATABASE_URL")));
        }
    }
    find_bin_dir().ok_or_else(|| fail("postgresql was installed but initdb was not found under /usr/lib/postgresql"))
}

/// Every ancestor must be searchable by others for the `postgres` user to
/// reach a cluster under it (a clone under /root is not).
fn reachable_by_others(dir: &Path) -> bool {
    dir.ancestors()
        .skip(1)
        .filter(|a| !a.as_os_str().is_empty())
        .all(|a| std::fs::metadata(a).map(|m| m.permissions().mode() & 0o001 != 0).unwrap_or(false))
}

fn free_port() -> Result<u16, CliError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| fail(format!("cannot find a free port: {e}")))?;
    Ok(listener.local_addr().map_err(|e| fail(e.to_string()))?.port())
}

struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    as_postgres: bool,
}

impl Cluster {
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(exe);
            cmd
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, mut cmd: Command, what: &str) -> Result<(), CliError> {
        let out = cmd.output().map_err(|e| fail(format!("{what}: cannot run: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("").to_owned();
            Err(fail(format!("{what} failed: {last} (log: {})", self.dir.join("postgres.log").display())))
        }
    }

    fn is_running(&self) -> bool {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D").arg(self.data()).arg("status");
        cmd.output().map(|o| o.status.success()).unwrap_or(false)
    }

    fn start(&self, port: u16) -> Result<(), CliError> {
        let mut cmd = self.command("pg_ctl");
        // fsync is off: this cluster holds disposable dev and test data.
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off -c max_connections=200"
        );
        cmd.arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("postgres.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]);
        self.run(cmd, "starting the private PostgreSQL")
    }
}

/// Where the cluster lives: `target/tollgate-dev/pg`, unless the `postgres`
/// user cannot reach the checkout (a clone under /root); then a
/// world-searchable place named after it.
fn cluster_dir(as_postgres: bool) -> Result<PathBuf, CliError> {
    let dir = dev_dir().join("pg");
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    if as_postgres && !reachable_by_others(&dir) {
        let tag: u64 = dir
            .to_string_lossy()
            .bytes()
            .fold(1469598103934665603, |h, b| (h ^ u64::from(b)).wrapping_mul(1099511628211));
        let elsewhere = PathBuf::from(format!("/var/tmp/tollgate-dev-{tag:016x}"));
        std::fs::create_dir_all(&elsewhere)?;
        return Ok(elsewhere);
    }
    Ok(dir)
}

/// Stops the private cluster if it runs (the test command does this in CI,
/// so no server outlives the run).
pub fn stop() -> Result<(), CliError> {
    let Some(bin) = find_bin_dir() else { return Ok(()) };
    let as_postgres = running_as_root();
    let cluster = Cluster { bin, dir: cluster_dir(as_postgres)?, as_postgres };
    if cluster.data().join("PG_VERSION").is_file() && cluster.is_running() {
        let mut cmd = cluster.command("pg_ctl");
        cmd.arg("-D").arg(cluster.data()).args(["-m", "fast", "-w", "stop"]);
        cluster.run(cmd, "stopping the private PostgreSQL")?;
    }
    Ok(())
}

/// The private cluster's directory: `target/tollgate-dev/pg` in the
/// workspace, or `TOLLGATE_DEV_DIR`.
pub fn dev_dir() -> PathBuf {
    match std::env::var_os("TOLLGATE_DEV_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tollgate-dev"),
    }
}

/// Starts (or reuses) the private cluster and returns a URL for `database`
/// on it, creating that database if needed.
pub async fn ensure(database: &str) -> Result<String, CliError> {
    let valid = !database.is_empty()
        && database.len() <= 63
        && database.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err(fail("--database: use 1 to 63 letters, digits and underscores"));
    }
    let bin = match find_bin_dir() {
        Some(bin) => bin,
        None => install_or_explain()?,
    };
    let as_postgres = running_as_root();
    let dir = cluster_dir(as_postgres)?;
    let cluster = Cluster { bin, dir: dir.clone(), as_postgres };
    if as_postgres {
        let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status()?;
        if !status.success() {
            return Err(fail("cannot hand the private cluster to the postgres user (is there a `postgres` user?)"));
        }
    }
    if !cluster.data().join("PG_VERSION").is_file() {
        eprintln!("tollgate: creating a private PostgreSQL cluster in {}", dir.display());
        let mut cmd = cluster.command("initdb");
        cmd.arg("-D").arg(cluster.data()).args([
            "-U",
            "tollgate",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        ]);
        cluster.run(cmd, "initdb")?;
    }
    let port_file = dir.join("port");
    let mut port: u16 = std::fs::read_to_string(&port_file).ok().and_then(|p| p.trim().parse().ok()).unwrap_or(0);
    if !(port != 0 && cluster.is_running()) {
        if port == 0 || TcpListener::bind(("127.0.0.1", port)).is_err() {
            port = free_port()?;
        }
        std::fs::write(&port_file, port.to_string())?;
        cluster.start(port)?;
    }
    let admin_url = format!("postgres://tollgate@127.0.0.1:{port}/postgres");
    create_database_if_missing(&admin_url, database).await?;
    Ok(format!("postgres://tollgate@127.0.0.1:{port}/{database}"))
}

async fn create_database_if_missing(admin_url: &str, name: &str) -> Result<(), CliError> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .map_err(|source| CliError::Connect { target: admin_url.to_owned(), source })?;
    tollgate_core::db::create_database_if_missing(&mut conn, name)
        .await
        .map_err(|source| CliError::Connect { target: admin_url.to_owned(), source })?;
    Ok(())
}

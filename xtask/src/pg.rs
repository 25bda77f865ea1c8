//! A throwaway PostgreSQL cluster for the test run, from the installed server binaries.
//!
//! initdb into a fresh temporary directory (owned by the `postgres` user when running as root),
//! password auth, listening on 127.0.0.1 at a free port; stopped and removed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster; stops when dropped.
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    /// Connection URL with the password.
    pub url: String,
    /// Port on 127.0.0.1.
    pub port: u16,
}

/// The newest installed server's bin directory, if any.
fn find_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn random_hex(bytes: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl Cluster {
    /// Starts a cluster, or `Ok(None)` if no server binaries are installed.
    ///
    /// # Errors
    /// If the binaries exist but the cluster cannot be created or started.
    pub fn start() -> Result<Option<Cluster>, String> {
        let Some(bin) = find_bin() else {
            return Ok(None);
        };
        let as_postgres = is_root();
        let dir = std::env::temp_dir().join(format!("tierstate-pg-{}", random_hex(6)));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let password = random_hex(16);
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, &password).map_err(|e| format!("write pwfile: {e}"))?;
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .map_err(|e| format!("chown: {e}"))?
                .success();
            if !ok {
                return Err("cannot chown the cluster directory to postgres".into());
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("free port: {e}"))?
            .port();
        let cluster = Cluster {
            url: format!("postgres://postgres:{password}@127.0.0.1:{port}/postgres"),
            dir,
            bin,
            as_postgres,
            port,
        };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                &format!("--pwfile={}", pwfile.display()),
            ],
        )?;
        cluster.pg_ctl("start")?;
        Ok(Some(cluster))
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The directory of the server binaries.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Whether the server runs as the `postgres` user (we are root).
    pub fn as_postgres(&self) -> bool {
        self.as_postgres
    }

    /// The pg_ctl options that start this cluster (for tests that stop and restart it).
    pub fn server_options(&self) -> String {
        format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        )
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .output()
            .map_err(|e| format!("{tool}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{tool} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn pg_ctl(&self, action: &str) -> Result<(), String> {
        let data = self.data_dir();
        let log = self.dir.join("server.log");
        let opts = self.server_options();
        let mut args = vec![
            "-D",
            data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-w",
        ];
        if action == "start" {
            args.extend(["-o", &opts]);
        } else {
            args.extend(["-m", "fast"]);
        }
        args.push(action);
        self.run("pg_ctl", &args)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl("stop");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

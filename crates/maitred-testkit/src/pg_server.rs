//! Control of the test PostgreSQL itself, for tests of server restarts.
//!
//! `scripts/test.sh` and `scripts/dev-servers.sh` export the cluster's data directory
//! ([`PG_DATADIR_ENV`]) and its `pg_ctl` ([`PG_CTL_ENV`]). The cluster runs as the owner
//! of its data directory (PostgreSQL refuses to run as root), so when the tests run as
//! root `pg_ctl` is run as that owner through `runuser`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{non_empty_env, output_with_timeout};

/// Data directory of the test PostgreSQL cluster.
pub const PG_DATADIR_ENV: &str = "MAITRED_TEST_PG_DATADIR";
/// Path of the `pg_ctl` that manages it.
pub const PG_CTL_ENV: &str = "MAITRED_TEST_PG_CTL";

/// The test cluster, as `pg_ctl` sees it.
#[derive(Clone, Debug)]
pub struct PgControl {
    pub datadir: PathBuf,
    pub pg_ctl: PathBuf,
}

/// The test cluster's control, when [`PG_DATADIR_ENV`] and [`PG_CTL_ENV`] are set.
pub fn pg_control() -> Option<PgControl> {
    Some(PgControl {
        datadir: PathBuf::from(non_empty_env(PG_DATADIR_ENV)?),
        pg_ctl: PathBuf::from(non_empty_env(PG_CTL_ENV)?),
    })
}

impl PgControl {
    /// The directory of the cluster's Unix socket (scripts/lib/pg.sh puts it beside the
    /// data directory).
    pub fn socket_dir(&self) -> PathBuf {
        self.datadir
            .parent()
            .map_or_else(|| PathBuf::from("/tmp"), Path::to_path_buf)
    }

    /// `pg_ctl restart -m fast -w`: sessions are terminated, the server stops and starts
    /// again on the same port; returns once it accepts connections.
    ///
    /// # Panics
    /// If `pg_ctl` fails or takes longer than `timeout`.
    pub fn restart(&self, timeout: Duration) {
        let log = self
            .datadir
            .parent()
            .unwrap_or_else(|| Path::new("/tmp"))
            .join("postgres.log");
        let secs = timeout.as_secs().max(1).to_string();
        let datadir = self.datadir.display().to_string();
        let log = log.display().to_string();
        let pg_ctl = self.pg_ctl.display().to_string();
        let args = [
            "-D",
            datadir.as_str(),
            "-l",
            log.as_str(),
            "-m",
            "fast",
            "-w",
            "-t",
            secs.as_str(),
            "restart",
        ];
        let mut cmd = match self.run_as() {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user.as_str(), "--", pg_ctl.as_str()])
                    .args(args);
                c
            }
            None => {
                let mut c = Command::new(&pg_ctl);
                c.args(args);
                c
            }
        };
        let out = output_with_timeout(&mut cmd, timeout + Duration::from_secs(5));
        assert!(
            out.status.success(),
            "pg_ctl restart failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The data directory's owner when we are root and it is someone else.
    fn run_as(&self) -> Option<String> {
        let me = std::fs::metadata("/proc/self").ok()?.uid();
        if me != 0 {
            return None;
        }
        let owner = std::fs::metadata(&self.datadir)
            .unwrap_or_else(|e| panic!("{}: {e}", self.datadir.display()))
            .uid();
        if owner == 0 {
            return None;
        }
        let out = output_with_timeout(
            Command::new("id").args(["-nu", &owner.to_string()]),
            Duration::from_secs(10),
        );
        assert!(out.status.success(), "id -nu {owner} failed");
        Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

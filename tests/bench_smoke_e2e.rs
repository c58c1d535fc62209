//! Smoke test of the load generator (`maitred-bench`, crate benches/) so it cannot rot: for
//! each protocol, `setup` straight to the test server, then `steady` and `storm` for a second
//! or two through the built maitred, checked through their JSON result files (work done, no
//! errors, maitred's address, no password anywhere in the output).
//!
//! The binary is `MAITRED_BENCH_BIN`, or `maitred-bench` beside the maitred binary
//! (`cargo build -p maitred-bench`; scripts/test.sh builds every target).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use maitred_testkit::mongo::{require_mongo, with_addr};
use maitred_testkit::mysql::{require_mysql, MysqlUrl};
use maitred_testkit::{self as kit, Maitred};

const ROWS: &str = "200";

fn bench_bin() -> PathBuf {
    let path = match std::env::var_os("MAITRED_BENCH_BIN").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => kit::maitred_bin()
            .with_file_name(format!("maitred-bench{}", std::env::consts::EXE_SUFFIX)),
    };
    assert!(
        path.is_file(),
        "maitred-bench not found at {}: cargo build -p maitred-bench (or set MAITRED_BENCH_BIN)",
        path.display()
    );
    path
}

/// Runs maitred-bench with `args`; returns its stdout + stderr. Fails the test on a
/// non-zero exit or if the output shows a password.
fn bench(args: &[&str]) -> String {
    let out = kit::output_with_timeout(
        Command::new(bench_bin()).args(args),
        Duration::from_secs(60),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "maitred-bench {args:?} failed:\n{text}"
    );
    assert!(
        !text.contains("app_secret"),
        "a password in the output:\n{text}"
    );
    text
}

/// `steady` then `storm` against `url` (maitred at `addr`); checks both JSON results.
fn steady_and_storm(protocol: &str, url: &str, addr: std::net::SocketAddr) {
    let dir = std::env::temp_dir().join(format!("bench-smoke-{protocol}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (mode, clients, secs) in [("steady", "3", "3s"), ("storm", "2", "2s")] {
        let json = dir.join(format!("{mode}.json"));
        let json_arg = json.to_string_lossy().into_owned();
        let text = bench(&[
            mode,
            url,
            "--clients",
            clients,
            "--duration",
            secs,
            "--rows",
            ROWS,
            "--json",
            &json_arg,
            "--label",
            "target=maitred",
        ]);
        let raw = std::fs::read_to_string(&json)
            .unwrap_or_else(|e| panic!("{mode} wrote no JSON ({e}):\n{text}"));
        assert!(
            !raw.contains("app_secret"),
            "a password in {mode}.json:\n{raw}"
        );
        let v: serde_json::Value = serde_json::from_str(&raw).expect("JSON result");
        assert_eq!(v["mode"], mode);
        assert_eq!(v["protocol"], protocol);
        assert_eq!(v["address"], addr.to_string());
        assert_eq!(v["labels"]["target"], "maitred");
        assert_eq!(v["clients"], clients.parse::<u64>().expect("number"));
        assert_eq!(
            v["error_total"], 0,
            "{mode} through maitred had errors:\n{raw}"
        );
        let ops = v["ops"].as_u64().expect("ops");
        assert!(ops > 0, "{mode} did no work:\n{raw}");
        let p50 = v["latency_ms"]["p50"].as_f64().expect("p50");
        let p99 = v["latency_ms"]["p99"].as_f64().expect("p99");
        assert!(p50 > 0.0 && p99 >= p50, "percentiles out of order:\n{raw}");
        if mode == "steady" {
            // The progress line runs once a second while the load runs.
            assert!(
                text.contains(&format!("steady {protocol} x3:")),
                "no progress line:\n{text}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn postgres_steady_and_storm_through_maitred() {
    let Some(upstream) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial_blocking();
    bench(&["setup", &upstream, "--rows", ROWS]);
    let m = Maitred::spawn(&["--upstream", &upstream, "--pool-size", "2"]);
    steady_and_storm("postgres", &m.url_for(&upstream), m.addr());
}

#[test]
fn mysql_steady_and_storm_through_maitred() {
    let Some(upstream) = require_mysql() else {
        return;
    };
    let _serial = kit::serial_blocking();
    bench(&["setup", &upstream, "--rows", ROWS]);
    let m = Maitred::spawn(&["--upstream", &upstream, "--pool-size", "2"]);
    steady_and_storm(
        "mysql",
        &MysqlUrl::parse(&upstream).with_addr(m.addr()),
        m.addr(),
    );
}

#[test]
fn mongodb_steady_and_storm_through_maitred() {
    let Some(upstream) = require_mongo() else {
        return;
    };
    let _serial = kit::serial_blocking();
    bench(&["setup", &upstream, "--rows", ROWS]);
    let m = Maitred::spawn(&["--upstream", &upstream, "--pool-size", "2"]);
    steady_and_storm("mongodb", &with_addr(&upstream, m.addr()), m.addr());
}

#[test]
fn unknown_scheme_is_a_clear_error() {
    let out = kit::output_with_timeout(
        Command::new(bench_bin()).args(["steady", "redis://127.0.0.1:1", "--duration", "1s"]),
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unsupported URL scheme"), "{err}");
}

//! End-to-end tests of startup parameters (docs/postgres.md, "Startup parameters"): a client
//! that asks for settings in its StartupMessage sees, through maitred in session and in
//! transaction mode, exactly what it sees straight against the server: the same
//! ParameterStatus values (the server's spelling: `eucjp` → `EUC_JP`), the same `SHOW`
//! results, and for a value the server refuses the same FATAL error.
//!
//! Raw protocol (tokio-postgres always sends its own client_encoding). Needs
//! `MAITRED_TEST_PG_URL`; without it the tests print a skip notice and pass, except under
//! `CI=true`.

use std::net::SocketAddr;

use maitred_e2e::pg_raw::{login, Session};
use maitred_testkit::{self as kit, Maitred};

/// `SHOW` of each of these settings.
fn shown(session: &mut Session) -> Vec<String> {
    let names = [
        "client_encoding",
        "DateStyle",
        "TimeZone",
        "IntervalStyle",
        "application_name",
        "search_path",
        "extra_float_digits",
    ];
    names
        .iter()
        .map(|n| {
            let rows = session
                .query(&format!("SHOW {n}"))
                .unwrap_or_else(|e| panic!("SHOW {n}: {e:?}"));
            let mut shown = rows.join("|");
            if *n == "search_path" {
                // A startup list is replayed as the identifiers it names: the same
                // schemas, shown as `x, y` where the server shows the text it was sent
                // (`x,Y`; docs/postgres.md, known differences).
                shown = shown.replace(' ', "").to_lowercase();
            }
            format!("{n}={shown}")
        })
        .collect()
}

/// Where the client connects: the server itself, or maitred in one pool mode.
struct Targets {
    url: kit::PgUrl,
    server: SocketAddr,
    session: Maitred,
    transaction: Maitred,
}

fn targets(pg_url: &str) -> Targets {
    let url = kit::pg_url_parts(pg_url);
    let server = url.host_port().parse().expect("server address");
    // One server connection each, so that a client takes over the connection (and the
    // settings) the previous client left.
    let start = |mode: &str| {
        Maitred::spawn(&[
            "--upstream",
            pg_url,
            "--pool-mode",
            mode,
            "--pool-size",
            "1",
        ])
    };
    Targets {
        url,
        server,
        session: start("session"),
        transaction: start("transaction"),
    }
}

impl Targets {
    fn each(&self) -> [(&'static str, SocketAddr); 3] {
        [
            ("server", self.server),
            ("session", self.session.addr()),
            ("transaction", self.transaction.addr()),
        ]
    }
}

/// Leaves settings unlike any case's on the pool's server connection: the next client must
/// not inherit them, nor have its own values read relative to them.
fn leave_other_settings(addr: SocketAddr, url: &kit::PgUrl) -> Session {
    let mut other = login(
        addr,
        url,
        &[
            ("DateStyle", "SQL, MDY"),
            ("TimeZone", "Asia/Tokyo"),
            ("IntervalStyle", "sql_standard"),
            ("application_name", "other"),
            ("client_encoding", "LATIN2"),
        ],
    )
    .unwrap_or_else(|e| panic!("the other client could not log in: {e:?}"));
    other.query("SELECT 1").expect("other client's query");
    other
}

#[test]
fn clients_see_the_servers_values_in_every_pool_mode() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial_blocking();
    let t = targets(&pg_url);
    let cases: &[&[(&str, &str)]] = &[
        &[("client_encoding", "eucjp")],
        &[("client_encoding", "EUC-JP")],
        &[("client_encoding", "utf8")],
        &[("client_encoding", "UTF8")],
        &[("client_encoding", "latin1")],
        &[("client_encoding", "LATIN1")],
        &[("DateStyle", "iso, dmy")],
        &[("datestyle", "dmy")],
        &[("TimeZone", "utc")],
        &[("timezone", "europe/paris")],
        &[("IntervalStyle", "ISO_8601")],
        &[("application_name", "h\u{e9}llo")],
        &[("options", "-c search_path=x,Y -c extra-float-digits=1")],
        &[
            ("options", "--DateStyle=german"),
            ("DateStyle", "postgres"),
            ("client_encoding", "win1252"),
        ],
    ];
    for case in cases {
        let mut seen = Vec::new();
        for (target, addr) in t.each() {
            // In session mode the other client must leave to free the one connection.
            let _other = (target != "server").then(|| leave_other_settings(addr, &t.url));
            let _other = _other.filter(|_| target == "transaction");
            let mut s = login(addr, &t.url, case)
                .unwrap_or_else(|e| panic!("{case:?} through {target}: {e:?}"));
            let status = s.status.clone();
            let shown = shown(&mut s);
            seen.push((target, status, shown));
        }
        let (_, server_status, server_shown) = &seen[0];
        for (target, status, shown) in &seen[1..] {
            assert_eq!(
                status, server_status,
                "{case:?}: ParameterStatus through maitred ({target}) vs the server"
            );
            assert_eq!(
                shown, server_shown,
                "{case:?}: SHOW through maitred ({target}) vs the server"
            );
        }
    }
}

#[test]
fn refused_values_get_the_servers_error() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial_blocking();
    let t = targets(&pg_url);
    let cases: &[&[(&str, &str)]] = &[
        &[("client_encoding", "nonsense")],
        &[("DateStyle", "garbage")],
        &[("TimeZone", "Mars/Olympus_Mons")],
        &[("IntervalStyle", "roman")],
        &[("mtd_no_such_setting", "1")],
        &[("application_name", "fine"), ("work_mem", "lots")],
        &[("options", "-c search_path")],
        &[("options", "-c statement_timeout=soon")],
    ];
    for case in cases {
        let mut errors = Vec::new();
        for (target, addr) in t.each() {
            match login(addr, &t.url, case) {
                Ok(_) => panic!("{case:?} through {target}: logged in"),
                Err(e) => errors.push((target, e)),
            }
        }
        let (_, server_error) = &errors[0];
        assert_eq!(server_error.get(&'V').map(String::as_str), Some("FATAL"));
        for (target, error) in &errors[1..] {
            assert_eq!(
                error, server_error,
                "{case:?}: the error through maitred ({target}) vs the server"
            );
        }
        // The refused value is remembered: a second attempt gets the same error.
        let again = login(t.transaction.addr(), &t.url, case).err();
        assert_eq!(again.as_ref(), Some(server_error), "{case:?} again");
    }
}

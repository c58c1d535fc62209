//! End-to-end tests of the process id a client is told (docs/postgres.md, "Process ids"):
//! in session mode it is the server's own, so `pg_backend_pid()`, `pg_stat_activity`,
//! notifications, cancel requests and `pg_terminate_backend` all agree with it, as
//! straight to the server; in transaction mode it is maitred's, and the client's own
//! notifications come back with it.
//!
//! Raw protocol (client libraries hide BackendKeyData). Needs `MAITRED_TEST_PG_URL`;
//! without it the tests print a skip notice and pass, except under `CI=true`.

use std::time::{Duration, Instant};

use maitred_e2e::pg_raw::{error_fields, login, read_message, send, send_cancel, Session};
use maitred_testkit::{self as kit, Maitred};

const WAIT: Duration = Duration::from_secs(3);

fn start(pg_url: &str, mode: &str, size: &str, extra: &[&str]) -> Maitred {
    let mut args = vec![
        "--upstream",
        pg_url,
        "--pool-mode",
        mode,
        "--pool-size",
        size,
    ];
    args.extend_from_slice(extra);
    Maitred::spawn(&args)
}

fn one(s: &mut Session, sql: &str) -> String {
    let rows = s.query(sql).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    rows.into_iter().next().unwrap_or_default()
}

/// Sends a simple query and reads what comes back until the connection ends or a
/// ReadyForQuery arrives: the SQLSTATEs of the errors, and whether it ended.
fn query_until_end(s: &mut Session, sql: &str) -> (Vec<String>, bool) {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    send(&mut s.stream, b'Q', &body);
    let mut codes = Vec::new();
    loop {
        let mut head = [0u8; 1];
        match s.stream.peek(&mut head) {
            Ok(0) | Err(_) => return (codes, true),
            Ok(_) => {}
        }
        match read_message(&mut s.stream) {
            (b'E', body) => codes.push(error_fields(&body).remove(&'C').unwrap_or_default()),
            (b'Z', _) => return (codes, false),
            _ => {}
        }
    }
}

#[test]
fn session_mode_tells_the_servers_pid_and_everything_agrees() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial_blocking();
    let url = kit::pg_url_parts(&pg_url);
    let m = start(&pg_url, "session", "2", &[]);
    let mut a = login(m.addr(), &url, &[]).expect("login");
    let told = a.key.0;
    assert_eq!(one(&mut a, "SELECT pg_backend_pid()"), told.to_string());
    assert_eq!(
        one(
            &mut a,
            &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {told}")
        ),
        "1",
        "pg_stat_activity shows the pid the client was told"
    );
    // A notification the client sends itself carries its own pid.
    a.query("LISTEN identity_e2e").expect("LISTEN");
    a.query("NOTIFY identity_e2e, 'mine'").expect("NOTIFY");
    let (pid, channel, payload) = a.next_notification(WAIT).expect("own notification");
    assert_eq!(
        (pid, channel.as_str(), payload.as_str()),
        (told, "identity_e2e", "mine")
    );

    // The told key cancels the client's query.
    let (addr, key) = (m.addr(), a.key);
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        send_cancel(addr, key);
    });
    let started = Instant::now();
    let cancelled = a.query("SELECT pg_sleep(10)").expect_err("cancelled");
    canceller.join().expect("canceller");
    assert_eq!(cancelled.get(&'C').map(String::as_str), Some("57014"));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(one(&mut a, "SELECT 1"), "1", "the session goes on");

    // pg_terminate_backend with the told pid, from another connection, ends the session.
    let mut b = login(m.addr(), &url, &[]).expect("second login");
    assert_ne!(b.key.0, told);
    assert_eq!(
        one(&mut b, &format!("SELECT pg_terminate_backend({told})")),
        "t"
    );
    std::thread::sleep(Duration::from_millis(300));
    let (codes, ended) = query_until_end(&mut a, "SELECT 1");
    assert!(
        ended,
        "the terminated client's connection ends (errors: {codes:?})"
    );
    assert!(
        codes.iter().any(|c| c == "57P01" || c == "08006"),
        "told why: {codes:?}"
    );
    assert_eq!(one(&mut b, "SELECT 1"), "1", "others go on");
}

#[test]
fn session_mode_clients_beyond_the_pool_wait_at_login_and_are_told_when_too_long() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial_blocking();
    let url = kit::pg_url_parts(&pg_url);
    let m = start(&pg_url, "session", "1", &["--queue-timeout", "1s"]);
    let a = login(m.addr(), &url, &[]).expect("first login");
    let started = Instant::now();
    let refused = login(m.addr(), &url, &[])
        .err()
        .expect("no connection for a second");
    assert_eq!(
        refused.get(&'C').map(String::as_str),
        Some("53300"),
        "{refused:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    // The wait is fair: once the first leaves, the next one logs in.
    let waiter = {
        let addr = m.addr();
        let url = url.clone();
        std::thread::spawn(move || login(addr, &url, &[]).map(|s| s.key.0))
    };
    std::thread::sleep(Duration::from_millis(200));
    let first = a.key.0;
    drop(a);
    let next = waiter
        .join()
        .expect("waiter")
        .expect("logged in once a left");
    assert_eq!(
        next, first,
        "the same server connection, reset, serves the next client"
    );
}

#[test]
fn transaction_mode_gives_the_clients_own_notifications_its_pid() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial_blocking();
    let url = kit::pg_url_parts(&pg_url);
    // One server connection: every NOTIFY below runs on the same server process.
    let m = start(&pg_url, "transaction", "1", &[]);
    let mut a = login(m.addr(), &url, &[]).expect("login a");
    let mut b = login(m.addr(), &url, &[]).expect("login b");
    let told = a.key.0;
    assert!(
        told >= 1 << 24,
        "maitred's own ids are above any server pid: {told}"
    );
    assert_ne!(one(&mut a, "SELECT pg_backend_pid()"), told.to_string());
    a.query("LISTEN identity_tx").expect("LISTEN");

    a.query("NOTIFY identity_tx, 'same'").expect("a NOTIFY");
    let own = a.next_notification(WAIT).expect("a's own");
    assert_eq!(own, (told, "identity_tx".into(), "same".into()));

    // The same notification from b, through the same server process: b's.
    b.query("NOTIFY identity_tx, 'same'").expect("b NOTIFY");
    let theirs = a.next_notification(WAIT).expect("b's");
    assert_ne!(theirs.0, told, "b's notification is not a's");
    assert_ne!(
        theirs.0, b.key.0,
        "other clients' notifications keep the server's pid"
    );

    // a notifies a channel it does not listen on; b then notifies one it does.
    a.query("NOTIFY identity_elsewhere")
        .expect("a NOTIFY elsewhere");
    b.query("NOTIFY identity_tx").expect("b NOTIFY");
    assert_ne!(a.next_notification(WAIT).expect("b's").0, told);

    // Rolled back, failed: nothing is sent, nothing is recorded.
    a.query("BEGIN; NOTIFY identity_tx, 'no'; ROLLBACK")
        .expect("rolled back");
    a.query("NOTIFY identity_tx, 'no'; SELECT 1/0")
        .expect_err("failed");
    b.query("NOTIFY identity_tx, 'no'").expect("b NOTIFY");
    let (pid, _, payload) = a.next_notification(WAIT).expect("b's");
    assert_eq!(payload, "no");
    assert_ne!(pid, told, "a's NOTIFYs were undone: this one is b's");

    // In a committed block, across queries.
    a.query("BEGIN").expect("BEGIN");
    a.query("NOTIFY identity_tx, 'block'")
        .expect("NOTIFY in block");
    a.query("COMMIT").expect("COMMIT");
    assert_eq!(a.next_notification(WAIT).expect("a's").0, told);
    drop((a, b));

    // A LISTEN maitred does not answer itself (here: with another statement) pins the
    // client to a connection of its own, where its notifications arrive.
    let mut c = login(m.addr(), &url, &[]).expect("login c");
    c.query("LISTEN identity_pinned; SELECT 1")
        .expect("LISTEN, pinned");
    c.query("NOTIFY identity_pinned, 'mine'").expect("NOTIFY");
    let own = c.next_notification(WAIT).expect("c's own");
    assert_eq!(own, (c.key.0, "identity_pinned".into(), "mine".into()));
}

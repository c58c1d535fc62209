//! Pipelines through maitred in transaction mode with errors in the middle: several Syncs
//! in flight (tokio-postgres pipelines the queries it is given at once), ReadyForQuery with
//! status I, T and E, a client that vanishes mid-pipeline, and pgbench's \startpipeline.
//! Every error returns at once, as straight to the server, and the only server connection
//! serves the next client. (psycopg's pipeline mode: tests/python/test_pg_pipeline.py.)

use std::process::Command;
use std::time::Duration;

use futures_util::future::join_all;
use maitred_e2e::pg_client::connect;
use maitred_testkit::{self as kit, Maitred};
use tokio_postgres::Client;

const AT_ONCE: Duration = Duration::from_secs(5);

/// Runs `sqls` pipelined (all sent before any reply is read); each query's outcome as
/// "ok" or its SQLSTATE.
async fn pipelined(client: &Client, sqls: &[&str]) -> Vec<String> {
    let futures = sqls.iter().map(|sql| async move {
        match client.query_typed(sql, &[]).await {
            Ok(_) => "ok".to_owned(),
            Err(e) => e
                .as_db_error()
                .map_or_else(|| e.to_string(), |d| d.code().code().to_owned()),
        }
    });
    tokio::time::timeout(AT_ONCE, join_all(futures))
        .await
        .unwrap_or_else(|_| panic!("pipeline {sqls:?} hung"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_errors_return_at_once_in_every_transaction_status() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    let m = Maitred::spawn(&["--upstream", &pg, "--pool-size", "1"]);
    let url = m.url_for(&pg);
    let cases: [&[&str]; 5] = [
        // Outside a block (status I): the error ends its own implicit transaction only.
        &[
            "select 1",
            "select * from nosuchtable",
            "select 2",
            "select 3",
        ],
        // Inside a block (T, then E): everything after the error is refused with 25P02.
        &[
            "begin",
            "select 1",
            "select 1/0",
            "select 2",
            "rollback",
            "select 3",
        ],
        // A block committed after an error is rolled back by the server.
        &["begin", "select * from nosuchtable", "commit", "select 4"],
        // Errors in a row, and a statement that cannot be prepared.
        &["wat", "select * from nosuchtable", "select 5"],
        &[
            "select 6",
            "copy (select 1) to stdout with (format wat)",
            "select 7",
        ],
    ];
    for sqls in cases {
        let straight = pipelined(&connect(&pg).await, sqls).await;
        let client = connect(&url).await;
        let through = pipelined(&client, sqls).await;
        assert_eq!(through, straight, "{sqls:?}");
        // The only server connection is free and clean for the next client.
        let other = connect(&url).await;
        let status: String =
            tokio::time::timeout(AT_ONCE, other.query_one("select 'idle'::text", &[]))
                .await
                .expect("the next client waited")
                .expect("next client")
                .get(0);
        assert_eq!(status, "idle");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_vanishes_mid_pipeline_frees_the_connection() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    let m = Maitred::spawn(&[
        "--upstream",
        &pg,
        "--pool-size",
        "1",
        "--queue-timeout",
        "10s",
    ]);
    let url = m.url_for(&pg);
    for _ in 0..3 {
        let client = connect(&url).await;
        client.batch_execute("begin").await.expect("begin");
        // Send a pipeline and vanish before its replies come back.
        let sent = async {
            let _ = join_all([
                client.query("select pg_sleep(0.3)", &[]),
                client.query("select * from nosuchtable", &[]),
                client.query("select 2", &[]),
            ])
            .await;
        };
        let _ = tokio::time::timeout(Duration::from_millis(50), sent).await;
        drop(client);
        let other = connect(&url).await;
        let started = std::time::Instant::now();
        let v: i32 = tokio::time::timeout(AT_ONCE, other.query_one("select 41 + 1", &[]))
            .await
            .expect("the next client waited too long")
            .expect("next client")
            .get(0);
        assert_eq!(v, 42);
        assert!(started.elapsed() < AT_ONCE);
        let in_tx: String = other
            .query_one("select current_setting('transaction_isolation')", &[])
            .await
            .expect("clean")
            .get(0);
        assert_eq!(in_tx, "read committed");
    }
}

#[test]
fn pgbench_pipelines_with_an_error_end_at_once() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial_blocking();
    let m = Maitred::spawn(&["--upstream", &pg, "--pool-size", "1"]);
    let url = m.url_for(&pg);
    let dir = std::env::temp_dir().join(format!("maitred-pipeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("script dir");
    let script = dir.join("pipeline.sql");
    std::fs::write(
        &script,
        "\\startpipeline\nselect 1;\nselect 1/0;\nselect 2;\n\\endpipeline\n",
    )
    .expect("script");
    let good = dir.join("good.sql");
    std::fs::write(
        &good,
        "\\startpipeline\nselect 1;\nselect 2;\n\\endpipeline\n",
    )
    .expect("script");
    for target in [&pg, &url] {
        let started = std::time::Instant::now();
        let out = kit::output_with_timeout(
            Command::new("pgbench")
                .args(["-n", "-M", "extended", "-t", "3", "-f"])
                .arg(&script)
                .arg(target),
            Duration::from_secs(60),
        );
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("division by zero"), "{text}");
        assert!(started.elapsed() < AT_ONCE * 2, "{text}");
        let out = kit::output_with_timeout(
            Command::new("pgbench")
                .args(["-n", "-M", "extended", "-c", "4", "-t", "50", "-f"])
                .arg(&good)
                .arg(target),
            Duration::from_secs(60),
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}");
        assert!(text.contains("number of failed transactions: 0"), "{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

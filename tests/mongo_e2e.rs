//! End-to-end tests: the built `maitred` binary between the `mongodb` Rust driver and the
//! SecantusDB server named by `MAITRED_TEST_MONGO_URL` (started by `scripts/test.sh`,
//! capped at 20 connections). Without it every test prints a skip notice and passes,
//! except under `CI=true`, where it fails.

use std::time::Duration;

use maitred_testkit::mongo::{require_mongo, with_addr};
use maitred_testkit::{self as kit, Maitred};
use mongodb::bson::{doc, Document};
use mongodb::options::ClientOptions;
use mongodb::Client;

fn start_maitred(upstream: &str, extra: &[&str]) -> Maitred {
    let mut args = vec!["--upstream", upstream];
    args.extend_from_slice(extra);
    Maitred::spawn(&args)
}

async fn client(url: &str) -> Client {
    let mut opts = ClientOptions::parse(url).await.expect("client options");
    opts.server_selection_timeout = Some(Duration::from_secs(10));
    Client::with_options(opts).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_driver_crud_cursor_and_transactions() {
    let Some(upstream) = require_mongo() else {
        return;
    };
    let _serial = kit::serial().await;
    let m = start_maitred(&upstream, &["--pool-size", "3"]);
    let c = client(&with_addr(&upstream, m.addr())).await;
    let coll = c.database("app").collection::<Document>("rust_e2e");
    coll.drop().await.expect("drop");
    let docs: Vec<Document> = (0..300).map(|i| doc! { "_id": i, "g": i % 2 }).collect();
    coll.insert_many(docs).await.expect("insert_many");
    assert_eq!(coll.count_documents(doc! {}).await.expect("count"), 300);

    // A cursor larger than one batch.
    let mut cursor = coll.find(doc! {}).batch_size(40).await.expect("find");
    let mut n = 0;
    while cursor.advance().await.expect("advance") {
        n += 1;
    }
    assert_eq!(n, 300);

    let mut agg = coll
        .aggregate(vec![doc! { "$group": { "_id": "$g", "n": { "$sum": 1 } } }])
        .await
        .expect("aggregate");
    let mut groups = 0;
    while agg.advance().await.expect("advance") {
        let d = agg.deserialize_current().expect("doc");
        assert_eq!(d.get_i32("n").expect("n"), 150);
        groups += 1;
    }
    assert_eq!(groups, 2);

    // One transaction committed, one aborted.
    let mut s = c.start_session().await.expect("session");
    s.start_transaction().await.expect("start");
    coll.insert_one(doc! { "_id": "committed" })
        .session(&mut s)
        .await
        .expect("insert in txn");
    s.commit_transaction().await.expect("commit");
    s.start_transaction().await.expect("start");
    coll.insert_one(doc! { "_id": "aborted" })
        .session(&mut s)
        .await
        .expect("insert in txn");
    s.abort_transaction().await.expect("abort");
    assert!(coll
        .find_one(doc! { "_id": "committed" })
        .await
        .expect("find")
        .is_some());
    assert!(coll
        .find_one(doc! { "_id": "aborted" })
        .await
        .expect("find")
        .is_none());

    // hello is maitred's own: no server host list.
    let hello = c
        .database("admin")
        .run_command(doc! { "hello": 1 })
        .await
        .expect("hello");
    assert!(hello.get("hosts").is_none() && hello.get("setName").is_none());
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_driver_wrong_password_is_refused() {
    let Some(upstream) = require_mongo() else {
        return;
    };
    let _serial = kit::serial().await;
    let m = start_maitred(&upstream, &["--pool-size", "1"]);
    let url = with_addr(&upstream, m.addr()).replacen(":app_secret@", ":wrong@", 1);
    let c = client(&url).await;
    let err = c
        .database("app")
        .run_command(doc! { "ping": 1 })
        .await
        .expect_err("wrong password must fail");
    assert!(err.to_string().contains("Authentication failed"), "{err}");
}

/// TLS between the Rust driver and maitred (`tls=true&tlsCAFile=...`, the test CA's
/// certificate for 127.0.0.1 from `MAITRED_TEST_PG_TLS_DIR`), with `tls_required`: a
/// plain client is refused with a message naming the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_driver_over_tls() {
    let Some(upstream) = require_mongo() else {
        return;
    };
    let tls = match std::env::var_os("MAITRED_TEST_PG_TLS_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None if kit::is_ci() => panic!("MAITRED_TEST_PG_TLS_DIR is not set under CI"),
        None => {
            eprintln!("skipping: no MAITRED_TEST_PG_TLS_DIR (run scripts/test.sh)");
            return;
        }
    };
    let _serial = kit::serial().await;
    let port = kit::free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let dir = std::env::temp_dir().join(format!("maitred-mongo-tls-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    // maitred refuses a key other users can read: a private copy.
    let key = dir.join("server.key");
    std::fs::copy(tls.join("server.key"), &key).expect("copy key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let config = dir.join("maitred.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[pools]]
name = "mongo-tls"
listen = "{addr}"
upstream = "{upstream}"
size = 2
tls_cert = "{cert}"
tls_key = "{key}"
tls_required = true
  [[pools.users]]
  name = "rusty"
  password = "rusty_pw"
"#,
            cert = tls.join("server.pem").display(),
            key = key.display(),
        ),
    )
    .expect("write config");
    let config_arg = config.display().to_string();
    let m = Maitred::spawn_at(addr, &["--config", config_arg.as_str()]);
    let url = format!(
        "mongodb://rusty:rusty_pw@{addr}/app?authSource=admin&tls=true&tlsCAFile={}",
        tls.join("ca.pem").display()
    );
    let c = client(&url).await;
    let coll = c.database("app").collection::<Document>("rust_tls_e2e");
    coll.drop().await.expect("drop");
    let docs: Vec<Document> = (0..120).map(|i| doc! { "_id": i }).collect();
    coll.insert_many(docs).await.expect("insert_many over TLS");
    let mut cursor = coll.find(doc! {}).batch_size(25).await.expect("find");
    let mut n = 0;
    while cursor.advance().await.expect("advance") {
        n += 1;
    }
    assert_eq!(n, 120, "{}", m.log());

    let mut plain = ClientOptions::parse(format!(
        "mongodb://rusty:rusty_pw@{addr}/app?authSource=admin"
    ))
    .await
    .expect("options");
    plain.server_selection_timeout = Some(Duration::from_secs(2));
    let plain = Client::with_options(plain).expect("client");
    let err = plain
        .database("app")
        .run_command(doc! { "ping": 1 })
        .await
        .expect_err("a plain client got in");
    assert!(err.to_string().contains("requires TLS"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// docs/mongodb.md, "Errors maitred composes": a request maitred could not run (no server
/// connection within queue_timeout) carries the labels a mongos gives it for its kind, so
/// the driver's own retry logic works: a retryable write is retried (and succeeds once the
/// connection frees), a statement of a transaction is labelled TransientTransactionError.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_driver_retries_what_maitred_could_not_run() {
    let Some(upstream) = require_mongo() else {
        return;
    };
    let _serial = kit::serial().await;
    let m = start_maitred(&upstream, &["--pool-size", "1", "--queue-timeout", "1s"]);
    let url = with_addr(&upstream, m.addr());
    let holder = client(&url).await;
    let other = client(&url).await;
    let held = holder
        .database("app")
        .collection::<Document>("retry_labels_e2e");
    let coll = other
        .database("app")
        .collection::<Document>("retry_labels_e2e");
    coll.drop().await.expect("drop");
    coll.insert_one(doc! { "_id": "setup" })
        .await
        .expect("setup");

    // The holder's transaction pins the pool's only server connection.
    let mut hs = holder.start_session().await.expect("session");
    hs.start_transaction().await.expect("start");
    held.insert_one(doc! { "_id": "held" })
        .session(&mut hs)
        .await
        .expect("insert in txn");

    // A statement of another transaction cannot run: TransientTransactionError.
    let mut os = other.start_session().await.expect("session");
    os.start_transaction().await.expect("start");
    let err = coll
        .insert_one(doc! { "_id": "in_txn" })
        .session(&mut os)
        .await
        .expect_err("no connection for the transaction");
    assert!(
        err.contains_label("TransientTransactionError"),
        "labels of {err}"
    );
    let _ = os.abort_transaction().await;

    // A retryable write: the first attempt waits 1 s and fails with RetryableWriteError,
    // the driver retries, and the holder commits during the retry's wait.
    let commit = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        hs.commit_transaction().await.expect("commit");
    });
    let started = std::time::Instant::now();
    coll.insert_one(doc! { "_id": "retried" })
        .await
        .expect("the driver retried the write once the connection was free");
    let took = started.elapsed();
    commit.await.expect("commit task");
    assert!(
        took >= Duration::from_millis(1400),
        "it waited for the holder: {took:?}"
    );
    assert!(coll
        .find_one(doc! { "_id": "retried" })
        .await
        .expect("find")
        .is_some());
    drop((holder, other, m));
}

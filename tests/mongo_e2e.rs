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

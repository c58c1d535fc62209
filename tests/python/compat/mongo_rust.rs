//! The Rust mongodb driver: the compatibility matrix's MongoDB checks
//! (tests/python/test_compat_matrix.py). Built as the example `compat_mongo` of
//! maitred-e2e (`cargo build --workspace --all-targets` builds it); URL and TAG come from
//! the environment, and every check prints one JSON line.

use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection};

type Res = Result<String, String>;

// Not 50000: SecantusDB (a Python server) stores ~4000 documents a second.
const N_LARGE: i64 = 10_000;

async fn run<F: Future<Output = Res>>(check: &str, f: F) -> bool {
    let t0 = Instant::now();
    let (ok, detail) = match tokio::time::timeout(Duration::from_secs(30), f).await {
        Ok(Ok(d)) => (true, d),
        Ok(Err(e)) => (false, e),
        Err(_) => (false, "check timed out after 30s".to_string()),
    };
    let mut detail = format!("{detail} ({} ms)", t0.elapsed().as_millis());
    detail.truncate(400);
    println!(
        "{}",
        serde_json::json!({"check": check, "ok": ok, "detail": detail})
    );
    ok
}

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("Error: {e}")
}

fn expect(cond: bool, what: &str) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(format!("AssertionError: {what}"))
    }
}

#[tokio::main]
async fn main() {
    let url = std::env::var("URL").unwrap_or_default();
    let tag = std::env::var("TAG").unwrap_or_else(|_| "compat".into());
    let mut client: Option<Client> = None;
    let ok = run("connect", async {
        let mut opts = ClientOptions::parse(&url).await.map_err(err)?;
        opts.max_pool_size = Some(3);
        opts.server_selection_timeout = Some(Duration::from_secs(10));
        let c = Client::with_options(opts).map_err(err)?;
        let pong = c
            .database("admin")
            .run_command(doc! {"ping": 1})
            .await
            .map_err(err)?;
        expect(
            pong.get_f64("ok").ok() == Some(1.0) || pong.get_i32("ok").ok() == Some(1),
            "ping",
        )?;
        let info = c
            .database("admin")
            .run_command(doc! {"buildInfo": 1})
            .await
            .map_err(err)?;
        let version = info.get_str("version").unwrap_or("?").to_string();
        c.database("app")
            .collection::<Document>(&format!("compat_{tag}"))
            .drop()
            .await
            .map_err(err)?;
        client = Some(c);
        Ok(format!("server {version}"))
    })
    .await;
    let Some(client) = client.filter(|_| ok) else {
        return;
    };
    let coll: Collection<Document> = client.database("app").collection(&format!("compat_{tag}"));

    run("pool", async {
        let tasks: Vec<_> = (0..9i32)
            .map(|k| {
                let coll = coll.clone();
                tokio::spawn(async move {
                    coll.insert_one(doc! {"_id": format!("p{k}"), "k": k})
                        .await
                        .map_err(err)?;
                    let d = coll
                        .find_one(doc! {"_id": format!("p{k}")})
                        .await
                        .map_err(err)?;
                    d.and_then(|d| d.get_i32("k").ok())
                        .ok_or_else(|| "missing".to_string())
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.map_err(err)??);
        }
        expect(
            out == (0..9).collect::<Vec<_>>(),
            &format!("results {out:?}"),
        )?;
        Ok("9 tasks at once over max_pool_size=3".into())
    })
    .await;

    run("crud", async {
        coll.insert_one(doc! {"_id": 1, "name": "a"})
            .await
            .map_err(err)?;
        let u = coll
            .update_one(doc! {"_id": 1}, doc! {"$set": {"name": "b"}})
            .await
            .map_err(err)?;
        expect(u.modified_count == 1, "update")?;
        let d = coll.find_one(doc! {"_id": 1}).await.map_err(err)?;
        expect(
            d.and_then(|d| d.get_str("name").ok().map(str::to_owned))
                .as_deref()
                == Some("b"),
            "find",
        )?;
        let groups: Vec<Document> = coll
            .aggregate(vec![
                doc! {"$match": {"k": {"$exists": true}}},
                doc! {"$group": {"_id": null, "n": {"$sum": 1}}},
            ])
            .await
            .map_err(err)?
            .try_collect()
            .await
            .map_err(err)?;
        expect(
            groups.len() == 1 && groups[0].get_i32("n").ok() == Some(9),
            &format!("aggregate {groups:?}"),
        )?;
        expect(
            coll.delete_one(doc! {"_id": 1})
                .await
                .map_err(err)?
                .deleted_count
                == 1,
            "delete",
        )?;
        Ok("insert, update, find, aggregate, delete".into())
    })
    .await;

    run("transaction", async {
        let mut s = client.start_session().await.map_err(err)?;
        s.start_transaction().await.map_err(err)?;
        coll.insert_one(doc! {"_id": "tx1"})
            .session(&mut s)
            .await
            .map_err(err)?;
        match coll.insert_one(doc! {"_id": "tx1"}).session(&mut s).await {
            Ok(_) => return Err("AssertionError: duplicate key did not fail".into()),
            Err(e) => expect(
                e.to_string().contains("11000"),
                &format!("duplicate key gave {e}"),
            )?,
        }
        // The server may have aborted it already (the driver then knows nothing of it).
        let _ = s.abort_transaction().await;
        expect(
            coll.find_one(doc! {"_id": "tx1"})
                .await
                .map_err(err)?
                .is_none(),
            "aborted insert visible",
        )?;
        Ok("aborted after a duplicate key, usable".into())
    })
    .await;

    run("large", async {
        let docs: Vec<Document> = (0..N_LARGE)
            .map(|i| doc! {"_id": 100_000 + i, "x": "x".repeat(20)})
            .collect();
        coll.insert_many(docs).await.map_err(err)?;
        let mut cursor = coll
            .find(doc! {"_id": {"$gte": 100_000}})
            .batch_size(1000)
            .await
            .map_err(err)?;
        let mut n = 0;
        while cursor.try_next().await.map_err(err)?.is_some() {
            n += 1;
        }
        expect(n == N_LARGE, &format!("{n} documents"))?;
        Ok(format!(
            "{N_LARGE} documents (insert_many, then a cursor with getMores)"
        ))
    })
    .await;

    let _ = coll.drop().await;
}

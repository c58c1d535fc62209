//! End-to-end tests of a fleet sharing one budget (issue 21), MongoDB: several maitred
//! processes with `fleet` and `budget` in front of the test SecantusDB (capped at 20
//! connections), many clients on each, and an independent observer (a direct client) that
//! counts maitred's server connections every 50 ms with `currentOp {$all: true}`: those
//! whose hello named the driver `maitred` (the coordination connections included).
//!
//! Tokens are lease documents here: a replica killed gives its tokens back when their
//! leases run out (`server_connect_timeout` 2 s and tick 100 ms: a lease of 6.6 s), not at
//! once. Asserted: the count never exceeds the budget; no client of a surviving replica
//! sees an error; after `kill -9` of one replica the others take its tokens within the
//! lease and a margin.
//!
//! Figures are printed (`FLEET ...` lines); `FLEET_SECS` sets the load phase (default 4 s).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maitred_testkit::mongo::require_mongo;
use maitred_testkit::{self as kit, Maitred};
use mongodb::bson::{doc, Document};
use mongodb::options::ClientOptions;
use mongodb::Client;

/// The lease of these replicas: 3 x server_connect_timeout (2 s) + tick + 500 ms.
const LEASE: Duration = Duration::from_millis(6600);

fn load_secs() -> u64 {
    std::env::var("FLEET_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
}

async fn client(url: &str, pool: u32) -> Client {
    let mut opts = ClientOptions::parse(url).await.expect("client options");
    opts.server_selection_timeout = Some(Duration::from_secs(10));
    opts.max_pool_size = Some(pool);
    Client::with_options(opts).expect("client")
}

/// A replica in fleet `fleet` with `budget`, pool size `size` and `server_connect_timeout`
/// `connect` (which sets the lease), clients trusted: its client URL and admin address.
fn replica(
    upstream: &str,
    fleet: &str,
    budget: usize,
    size: usize,
    connect: &str,
) -> (Maitred, String, SocketAddr) {
    let listen: SocketAddr = format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("addr");
    let admin: SocketAddr = format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("addr");
    let dir = std::env::temp_dir().join(format!(
        "maitred-fleet-mongo-{}-{}",
        std::process::id(),
        listen.port()
    ));
    std::fs::create_dir_all(&dir).expect("config dir");
    let path = dir.join("maitred.toml");
    let toml = format!(
        "[admin]\nlisten = \"{admin}\"\n\n[[pools]]\nname = \"fleet\"\nlisten = \"{listen}\"\n\
         upstream = \"{upstream}\"\nsize = {size}\nqueue_timeout = \"20s\"\n\
         server_connect_timeout = \"{connect}\"\nclient_auth = \"trust\"\n\
         fleet = \"{fleet}\"\nbudget = {budget}\nfleet_idle_release = \"2s\"\n",
    );
    std::fs::write(&path, toml).expect("write config");
    let arg = path.display().to_string();
    let m = Maitred::spawn_at(listen, &["--config", arg.as_str()]);
    assert!(
        kit::wait_for_port(admin, Duration::from_secs(10)),
        "admin never listened\n{}",
        m.log()
    );
    let url = format!("mongodb://{listen}/app?directConnection=true");
    (m, url, admin)
}

/// Samples maitred's server connections every 50 ms until `stop`; keeps the peak. Runs on
/// a thread and runtime of its own, so that the clients' load does not slow it down.
struct Observer {
    peak: Arc<AtomicUsize>,
    samples: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

async fn observe(upstream: &str) -> Observer {
    let peak = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::spawn({
        let (peak, samples, stop) = (peak.clone(), samples.clone(), stop.clone());
        let url = upstream.to_owned();
        move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("observer runtime");
            rt.block_on(async move {
                let c = client(&url, 1).await;
                let admin = c.database("admin");
                admin
                    .run_command(doc! { "ping": 1 })
                    .await
                    .expect("observer ping");
                let _ = ready_tx.send(());
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                while !stop.load(SeqCst) {
                    tick.tick().await;
                    let r = admin
                        .run_command(doc! { "currentOp": 1, "$all": true })
                        .await
                        .expect("observer currentOp");
                    let n = r
                        .get_array("inprog")
                        .map(|ops| {
                            ops.iter()
                                .filter(|op| {
                                    op.as_document()
                                        .and_then(|d| d.get_document("clientMetadata").ok())
                                        .and_then(|m| m.get_document("driver").ok())
                                        .and_then(|d| d.get_str("name").ok())
                                        == Some("maitred")
                                })
                                .count()
                        })
                        .unwrap_or(0);
                    peak.fetch_max(n, SeqCst);
                    samples.fetch_add(1, SeqCst);
                }
            });
        }
    });
    ready_rx.await.expect("observer connected");
    Observer {
        peak,
        samples,
        stop,
        thread,
    }
}

impl Observer {
    async fn finish(self) -> (usize, u64) {
        self.stop.store(true, SeqCst);
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join().expect("observer"))
            .await
            .expect("join");
        (self.peak.load(SeqCst), self.samples.load(SeqCst))
    }
    fn peak(&self) -> usize {
        self.peak.load(SeqCst)
    }
}

type Tasks = Vec<tokio::task::JoinHandle<(u64, Vec<String>)>>;

/// `clients` concurrent clients through one driver on `url`, each running a short query
/// in a loop until `stop`.
async fn drive(url: &str, clients: u32, stop: Arc<AtomicBool>) -> Tasks {
    let c = client(url, clients).await;
    (0..clients)
        .map(|_| {
            let coll = c.database("app").collection::<Document>("fleet_e2e");
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut done = 0;
                while !stop.load(SeqCst) {
                    match coll.find_one(doc! { "_id": 1 }).await {
                        Ok(_) => done += 1,
                        Err(e) => return (done, vec![e.to_string()]),
                    }
                }
                (done, Vec::new())
            })
        })
        .collect()
}

async fn collect(tasks: Tasks) -> (u64, Vec<String>) {
    let mut done = 0;
    let mut errors = Vec::new();
    for t in tasks {
        let (d, e) = t.await.expect("client task");
        done += d;
        errors.extend(e);
    }
    (done, errors)
}

async fn held_now(admin: SocketAddr) -> f64 {
    tokio::task::spawn_blocking(move || {
        kit::admin_http::metric_sum(admin, "maitred_fleet_tokens_held")
    })
    .await
    .expect("metrics")
}

/// 3 replicas, budget 10, 10 clients each: never above 10, no client error. Then kill -9
/// of one replica under load: the others' clients see no error, and they take its tokens
/// once its leases ran out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_never_exceed_the_budget_and_take_over_after_a_kill() {
    let _serial = kit::serial().await;
    let Some(upstream) = require_mongo() else {
        return;
    };
    const BUDGET: usize = 10;
    // A fleet name of its own: the leases of an earlier run's replicas (killed at its end)
    // would hold the tokens for up to a lease.
    let fleet = format!("e2e-mongo-budget-{}", std::process::id());
    let mut replicas: Vec<_> = (0..3)
        .map(|_| replica(&upstream, &fleet, BUDGET, 8, "2s"))
        .collect();
    let observer = observe(&upstream).await;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (_, url, _) in &replicas {
        tasks.push(drive(url, 10, stop.clone()).await);
    }
    tokio::time::sleep(Duration::from_secs(load_secs())).await;
    let peak_load = observer.peak();
    let mut held_at = Vec::new();
    for (_, _, admin) in &replicas {
        held_at.push(held_now(*admin).await);
    }

    // kill -9 of replica 0 while the others keep going.
    let survivors_before: f64 = held_at[1..].iter().sum();
    let (mut killed, _, _) = replicas.remove(0);
    let victim_tasks = tasks.remove(0);
    let killed_at = Instant::now();
    killed.kill();
    let mut recovered = None;
    while killed_at.elapsed() < LEASE + Duration::from_secs(5) {
        let mut sum = 0.0;
        for (_, _, admin) in &replicas {
            sum += held_now(*admin).await;
        }
        if sum > survivors_before {
            recovered = Some(killed_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, SeqCst);
    let mut done = 0;
    let mut errors = Vec::new();
    for t in tasks {
        let (d, e) = collect(t).await;
        done += d;
        errors.extend(e);
    }
    let (victim_done, _victim_errors) = collect(victim_tasks).await;
    let (peak, samples) = observer.finish().await;
    if std::env::var_os("FLEET_LOGS").is_some() {
        for (m, _, _) in &replicas {
            println!("--- survivor's log ---\n{}", m.log());
        }
    }
    println!(
        "FLEET mongo peak={peak} budget={BUDGET} samples={samples} peak_during_load={peak_load} \
         queries={} held={held_at:?} secs={} lease={LEASE:?} recovered_after_kill={recovered:?}",
        done + victim_done,
        started.elapsed().as_secs()
    );
    assert!(samples > 20, "the observer sampled only {samples} times");
    assert!(
        peak <= BUDGET,
        "the server counted {peak} connections from the fleet, budget {BUDGET}"
    );
    assert!(
        errors.is_empty(),
        "clients of surviving replicas saw errors: {errors:?}"
    );
    assert!(done > 0);
    assert!(
        recovered.is_some(),
        "the survivors never took the killed replica's tokens (held {held_at:?})"
    );
    drop(killed);
}

/// A replica's lease documents deleted behind its back (as if its leases had run out and
/// gone to another replica): its next renewal finds fewer tokens than it holds, it counts
/// that as a lost coordination connection, and takes tokens again for the connections it
/// still has; its clients see no error and the fleet stays within the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_is_a_lost_coordination_connection() {
    let _serial = kit::serial().await;
    let Some(upstream) = require_mongo() else {
        return;
    };
    const BUDGET: usize = 8;
    let fleet = format!("e2e-mongo-lost-{}", std::process::id());
    let (m, url, admin) = replica(&upstream, &fleet, BUDGET, 6, "2s");
    let observer = observe(&upstream).await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = drive(&url, 12, stop.clone()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = held_now(admin).await;
    let direct = client(&upstream, 1).await;
    let leases = direct
        .database("app")
        .collection::<Document>("maitred_fleet");
    let deleted = leases
        .delete_many(doc! { "fleet": &fleet, "kind": "token" })
        .await
        .expect("delete the leases")
        .deleted_count;
    let at = Instant::now();
    let lost = |admin| {
        tokio::task::spawn_blocking(move || {
            kit::admin_http::metric_sum(admin, "maitred_fleet_coordination_lost")
        })
    };
    let mut seen_lost = false;
    let mut back = None;
    while at.elapsed() < Duration::from_secs(10) {
        seen_lost |= lost(admin).await.expect("metrics") > 0.0;
        let live = leases
            .count_documents(doc! { "fleet": &fleet, "kind": "token" })
            .await
            .expect("count");
        if live >= 2 && held_now(admin).await >= 2.0 {
            back = Some(at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = held_now(admin).await;
    stop.store(true, SeqCst);
    let (done, errors) = collect(tasks).await;
    let (peak, samples) = observer.finish().await;
    println!(
        "FLEET mongo leases deleted: {deleted} documents, held before={before} after={after} \
         lost_seen={seen_lost} back_after={back:?} peak={peak} budget={BUDGET} samples={samples} \
         queries={done}"
    );
    assert!(deleted >= 2, "the replica held no lease documents");
    assert!(peak <= BUDGET, "peak {peak} above budget {BUDGET}");
    assert!(errors.is_empty(), "{errors:?}\n{}", m.log());
    assert!(back.is_some(), "no tokens taken again\n{}", m.log());
    assert!(
        m.log().contains("lease"),
        "the replica did not report the lost lease\n{}",
        m.log()
    );
}

/// One replica driven hard while the others idle ends up with most tokens; they flow back
/// when the others get busy (their wanting documents are seen in the survey). Tokens moving
/// means connections closed and opened: SecantusDB (one Python process) under this load
/// sometimes takes more than 2 s to accept one, hence a connect timeout of 5 s here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_move_to_the_busy_replica_and_back() {
    let _serial = kit::serial().await;
    let Some(upstream) = require_mongo() else {
        return;
    };
    const BUDGET: usize = 12;
    let fleet = format!("e2e-mongo-moves-{}", std::process::id());
    let replicas: Vec<_> = (0..3)
        .map(|_| replica(&upstream, &fleet, BUDGET, 10, "5s"))
        .collect();
    let observer = observe(&upstream).await;
    let stop_hard = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let hard = drive(&replicas[0].1, 10, stop_hard.clone()).await;
    // 3 coordination tokens, the 2 idle replicas keep their one: 12 - 3 - 2 = 7 for it.
    let mut moved = None;
    while t0.elapsed() < Duration::from_secs(10) {
        if held_now(replicas[0].2).await >= 7.0 {
            moved = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The others get busy: replica 0 comes down to its fair share, ceil(9 / 3) = 3 (+1).
    let stop_others = Arc::new(AtomicBool::new(false));
    let t1 = Instant::now();
    let mut others = Vec::new();
    for (_, url, _) in &replicas[1..] {
        others.push(drive(url, 10, stop_others.clone()).await);
    }
    let mut back = None;
    while t1.elapsed() < Duration::from_secs(10) {
        let a = held_now(replicas[1].2).await;
        let b = held_now(replicas[2].2).await;
        if a >= 3.0 && b >= 3.0 {
            back = Some(t1.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_hard.store(true, SeqCst);
    stop_others.store(true, SeqCst);
    let (_, mut errors) = collect(hard).await;
    for t in others {
        errors.extend(collect(t).await.1);
    }
    let (peak, _) = observer.finish().await;
    println!("FLEET mongo moves: to the busy replica after {moved:?}, back to the others after {back:?}, peak={peak} budget={BUDGET}");
    assert!(peak <= BUDGET, "peak {peak} above budget {BUDGET}");
    assert!(errors.is_empty(), "{errors:?}");
    assert!(moved.is_some(), "the busy replica never got most tokens");
    assert!(back.is_some(), "the tokens never flowed back");
}

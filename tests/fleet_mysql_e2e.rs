//! End-to-end tests of a fleet sharing one budget (issue 21), MySQL/MariaDB: several
//! maitred processes with `fleet` and `budget` in front of the test MariaDB (capped at 20
//! connections), many clients on each, and an independent observer (a direct connection
//! as the same user, which has PROCESS) that counts maitred's server connections in
//! `information_schema.PROCESSLIST` every 50 ms, its own left out. The clients reach the
//! server only through maitred, so every other session of the user is maitred's (the
//! coordination connections included).
//!
//! Asserted: the count never exceeds the budget; no client of a surviving replica sees an
//! error; after `kill -9` of one replica the others take its tokens (the server frees
//! its named locks when its coordination connection's socket closes).
//!
//! Figures are printed (`FLEET ...` lines); `FLEET_SECS` sets the load phase (default 5 s).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maitred_e2e::mysql_client::{connect, must_connect};
use maitred_testkit::mysql::{require_mysql, MysqlUrl};
use maitred_testkit::{self as kit, Maitred};
use mysql_async::prelude::*;

fn load_secs() -> u64 {
    std::env::var("FLEET_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
}

/// A replica in fleet `fleet` with `budget` and pool size `size`: its client URL and its
/// admin address.
fn replica(
    url: &MysqlUrl,
    fleet: &str,
    budget: usize,
    size: usize,
) -> (Maitred, String, SocketAddr) {
    let listen: SocketAddr = format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("addr");
    let admin: SocketAddr = format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("addr");
    let dir = std::env::temp_dir().join(format!(
        "maitred-fleet-my-{}-{}",
        std::process::id(),
        listen.port()
    ));
    std::fs::create_dir_all(&dir).expect("config dir");
    let path = dir.join("maitred.toml");
    let toml = format!(
        "[admin]\nlisten = \"{admin}\"\n\n[[pools]]\nname = \"fleet\"\nlisten = \"{listen}\"\n\
         upstream = \"{upstream}\"\nsize = {size}\nqueue_timeout = \"20s\"\n\
         fleet = \"{fleet}\"\nbudget = {budget}\nfleet_idle_release = \"2s\"\n\
         [[pools.users]]\nname = \"{user}\"\npassword = \"{password}\"\n",
        upstream = url.url(),
        user = url.user,
        password = url.password,
    );
    std::fs::write(&path, toml).expect("write config");
    let arg = path.display().to_string();
    let m = Maitred::spawn_at(listen, &["--config", arg.as_str()]);
    assert!(
        kit::wait_for_port(admin, Duration::from_secs(10)),
        "admin never listened\n{}",
        m.log()
    );
    let client_url = url.with_addr(listen);
    (m, client_url, admin)
}

/// Samples maitred's server connections every 50 ms until `stop`; keeps the peak. Runs on
/// a thread and runtime of its own, so that the clients' load does not slow it down.
struct Observer {
    peak: Arc<AtomicUsize>,
    samples: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

async fn observe(url: &MysqlUrl) -> Observer {
    let peak = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::spawn({
        let (peak, samples, stop) = (peak.clone(), samples.clone(), stop.clone());
        let (url, user) = (url.url(), url.user.clone());
        move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("observer runtime");
            rt.block_on(async move {
                let mut conn = must_connect(&url).await;
                let _ = ready_tx.send(());
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                while !stop.load(SeqCst) {
                    tick.tick().await;
                    let n: Option<u64> = conn
                        .exec_first(
                            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                             WHERE USER = ? AND ID <> CONNECTION_ID()",
                            (user.as_str(),),
                        )
                        .await
                        .expect("observer query");
                    peak.fetch_max(n.unwrap_or(0) as usize, SeqCst);
                    samples.fetch_add(1, SeqCst);
                }
                let _ = conn.disconnect().await;
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

/// `clients` clients on `url`, each running short queries until `stop`.
fn drive(url: String, clients: usize, stop: Arc<AtomicBool>) -> Tasks {
    (0..clients)
        .map(|_| {
            let url = url.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut done = 0;
                let mut conn = match connect(&url).await {
                    Ok(c) => c,
                    Err(e) => return (0, vec![format!("connect: {e}")]),
                };
                while !stop.load(SeqCst) {
                    match conn.query_drop("SELECT SLEEP(0.005)").await {
                        Ok(()) => done += 1,
                        Err(e) => return (done, vec![e.to_string()]),
                    }
                }
                let _ = conn.disconnect().await;
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

/// 4 replicas, budget 12, 25 clients each: never above 12, no client error. Then kill -9
/// of one replica under load: the others' clients see no error and take its tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_never_exceed_the_budget_and_survive_a_kill() {
    let _serial = kit::serial().await;
    let Some(url) = require_mysql() else { return };
    let url = MysqlUrl::parse(&url);
    const BUDGET: usize = 12;
    let mut replicas: Vec<_> = (0..4)
        .map(|_| replica(&url, "e2e-my-budget", BUDGET, 10))
        .collect();
    let observer = observe(&url).await;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks: Vec<Tasks> = replicas
        .iter()
        .map(|(_, client_url, _)| drive(client_url.clone(), 25, stop.clone()))
        .collect();
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
    while killed_at.elapsed() < Duration::from_secs(10) {
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
    println!(
        "FLEET mysql peak={peak} budget={BUDGET} samples={samples} peak_during_load={peak_load} \
         queries={} held={held_at:?} secs={} recovered_after_kill={recovered:?}",
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

/// A scale-up from 1 to 4 replicas (pool size 2 each) under load never takes the total
/// over the budget. The replicas' demand (1 + 2 tokens each) fits the budget: when every
/// token is held, a replica that joins opens its coordination connection, finds no token
/// and closes it, over the budget by one for a round trip, until another gives a token
/// back (the shared controller's documented limit, docs/operations.md "Fleets").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_up_stays_within_the_budget() {
    let _serial = kit::serial().await;
    let Some(url) = require_mysql() else { return };
    let url = MysqlUrl::parse(&url);
    const BUDGET: usize = 12;
    let observer = observe(&url).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut replicas = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let r = replica(&url, "e2e-my-scale", BUDGET, 2);
        tasks.push(drive(r.1.clone(), 15, stop.clone()));
        replicas.push(r);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut held_at = Vec::new();
    for (_, _, admin) in &replicas {
        held_at.push(held_now(*admin).await);
    }
    stop.store(true, SeqCst);
    let mut errors = Vec::new();
    let mut done = 0;
    for t in tasks {
        let (d, e) = collect(t).await;
        done += d;
        errors.extend(e);
    }
    let (peak, samples) = observer.finish().await;
    println!("FLEET mysql scale-up 1 -> 4: peak={peak} budget={BUDGET} samples={samples} held={held_at:?} queries={done}");
    assert!(peak <= BUDGET, "peak {peak} above budget {BUDGET}");
    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        held_at.iter().all(|h| *h >= 2.0),
        "every replica holds its coordination token and one more: {held_at:?}"
    );
}

/// The coordination connection killed on the server (`KILL`) under load: the replica
/// opens a new one and takes tokens again for the connections it still has; its clients
/// see no error and the fleet stays within the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_coordination_connection_is_replaced() {
    let _serial = kit::serial().await;
    let Some(url) = require_mysql() else { return };
    let url = MysqlUrl::parse(&url);
    const BUDGET: usize = 8;
    let fleet = "e2e-my-kill-coordination";
    let (m, client_url, admin) = replica(&url, fleet, BUDGET, 10);
    let observer = observe(&url).await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = drive(client_url, 20, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = held_now(admin).await;

    // Every token lock is held by the coordination connection: the holder of one is it.
    let names = maitred_mysql::fleet::LockNames::new(fleet);
    let mut direct = must_connect(&url.url()).await;
    let mut holder: Option<u64> = None;
    for i in 0..BUDGET as u32 {
        holder = direct
            .exec_first("SELECT IS_USED_LOCK(?)", (names.token(i),))
            .await
            .expect("IS_USED_LOCK")
            .flatten();
        if holder.is_some() {
            break;
        }
    }
    let holder = holder.expect("a token lock is held");
    let killed_at = Instant::now();
    direct
        .query_drop(format!("KILL {holder}"))
        .await
        .expect("KILL the coordination connection");
    // Back when the replica holds tokens through a new coordination connection.
    let mut back = None;
    while killed_at.elapsed() < Duration::from_secs(10) {
        let h: Option<u64> = direct
            .exec_first("SELECT IS_USED_LOCK(?)", (names.token(0),))
            .await
            .expect("IS_USED_LOCK")
            .flatten();
        if h.is_some_and(|h| h != holder) && held_now(admin).await >= 2.0 {
            back = Some(killed_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = held_now(admin).await;
    stop.store(true, SeqCst);
    let (done, errors) = collect(tasks).await;
    let _ = direct.disconnect().await;
    let (peak, samples) = observer.finish().await;
    println!(
        "FLEET mysql coordination killed: held before={before} after={after} back_after={back:?} \
         peak={peak} budget={BUDGET} samples={samples} queries={done}"
    );
    assert!(peak <= BUDGET, "peak {peak} above budget {BUDGET}");
    assert!(errors.is_empty(), "{errors:?}\n{}", m.log());
    assert!(
        back.is_some(),
        "no new coordination connection\n{}",
        m.log()
    );
}

/// One replica driven hard while the others idle ends up with most tokens; they flow back
/// when the others get busy (their wanting locks are seen in the survey).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_move_to_the_busy_replica_and_back() {
    let _serial = kit::serial().await;
    let Some(url) = require_mysql() else { return };
    let url = MysqlUrl::parse(&url);
    const BUDGET: usize = 12;
    let replicas: Vec<_> = (0..3)
        .map(|_| replica(&url, "e2e-my-moves", BUDGET, 10))
        .collect();
    let observer = observe(&url).await;
    let stop_hard = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let hard = drive(replicas[0].1.clone(), 25, stop_hard.clone());
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
    let others: Vec<Tasks> = replicas[1..]
        .iter()
        .map(|(_, client_url, _)| drive(client_url.clone(), 25, stop_others.clone()))
        .collect();
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
    println!("FLEET mysql moves: to the busy replica after {moved:?}, back to the others after {back:?}, peak={peak} budget={BUDGET}");
    assert!(peak <= BUDGET, "peak {peak} above budget {BUDGET}");
    assert!(errors.is_empty(), "{errors:?}");
    assert!(moved.is_some(), "the busy replica never got most tokens");
    assert!(back.is_some(), "the tokens never flowed back");
}

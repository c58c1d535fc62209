//! End-to-end tests of a fleet sharing one budget (issue 21), PostgreSQL: several maitred
//! processes with `--fleet NAME --budget N` in front of the test server, many clients on
//! each, and an independent observer (a superuser connection, which uses the server's
//! reserved slots) that counts maitred's server connections in `pg_stat_activity` every
//! 50 ms. maitred's server connections are those of the upstream URL's user (the test's
//! clients reach the server only through maitred; `application_name` would not do: a
//! client's own setting is applied to the server connection it leases).
//!
//! Asserted: the count never exceeds the budget; no client sees an error; after `kill -9`
//! of one replica the others take its tokens (the server frees them when the killed
//! process's connections close) and their clients see no error; load moves to the busy
//! replica and back.
//!
//! Clients log in with `trust`: 200 SCRAM logins of an unoptimised build (both sides)
//! take longer than the login timeout on a 2-core machine, which is not what is tested.
//!
//! Figures are printed (`FLEET ...` lines); `FLEET_SECS` sets the load phase (default 8 s).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maitred_e2e::pg_client::connect;
use maitred_testkit::{self as kit, Maitred};

const APP: &str = "maitred_fleet_e2e";

fn with_app_name(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={APP}")
}

fn app_user(url: &str) -> String {
    kit::pg_url_parts(url).user.clone().unwrap_or_default()
}

fn load_secs() -> u64 {
    std::env::var("FLEET_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8)
}

/// A replica in fleet `fleet` with `budget`, pool size `size`, and its admin address.
fn replica(
    url: &str,
    fleet: &str,
    budget: usize,
    size: usize,
    idle: &str,
) -> (Maitred, SocketAddr) {
    let listen: SocketAddr = format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("addr");
    let admin: SocketAddr = format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("addr");
    let parts = kit::pg_url_parts(url);
    let dir = std::env::temp_dir().join(format!(
        "maitred-fleet-{}-{}",
        std::process::id(),
        listen.port()
    ));
    std::fs::create_dir_all(&dir).expect("config dir");
    let path = dir.join("maitred.toml");
    let upstream = with_app_name(url);
    let toml = format!(
        "[admin]\nlisten = \"{admin}\"\n\n[[pools]]\nname = \"fleet\"\nlisten = \"{listen}\"\n\
         upstream = \"{upstream}\"\nsize = {size}\nqueue_timeout = \"20s\"\n\
         fleet = \"{fleet}\"\nbudget = {budget}\nfleet_idle_release = \"{idle}\"\n\
         client_auth = \"trust\"\n\
         [[pools.users]]\nname = \"{user}\"\npassword = \"{password}\"\n",
        user = parts.user.clone().unwrap_or_default(),
        password = parts.password.clone().unwrap_or_default(),
    );
    std::fs::write(&path, toml).expect("write config");
    let arg = path.display().to_string();
    let m = Maitred::spawn_at(listen, &["--config", arg.as_str()]);
    assert!(
        kit::wait_for_port(admin, Duration::from_secs(10)),
        "admin never listened\n{}",
        m.log()
    );
    (m, admin)
}

/// Samples maitred's server connections every 50 ms until `stop`; keeps the peak. Runs on
/// a thread and runtime of its own, so that the clients' load does not slow it down.
struct Observer {
    peak: Arc<AtomicUsize>,
    samples: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

async fn observe(superuser_url: &str, user: String) -> Observer {
    let peak = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::spawn({
        let (peak, samples, stop) = (peak.clone(), samples.clone(), stop.clone());
        let url = superuser_url.to_owned();
        move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("observer runtime");
            rt.block_on(async move {
                let client = connect(&url).await;
                let _ = ready_tx.send(());
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                while !stop.load(SeqCst) {
                    tick.tick().await;
                    let row = client
                        .query_one(
                            "SELECT count(*) FROM pg_stat_activity \
                             WHERE usename = $1 AND backend_type = 'client backend'",
                            &[&user],
                        )
                        .await
                        .expect("observer query");
                    let n: i64 = row.get(0);
                    peak.fetch_max(n as usize, SeqCst);
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

/// `clients` clients on `url`, each running short queries until `stop`; returns the
/// number of queries done and the errors seen.
fn drive(
    url: String,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(u64, Vec<String>)>> {
    (0..clients)
        .map(|_| {
            let url = url.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut errors = Vec::new();
                let mut done = 0;
                let client = match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                    Ok((client, conn)) => {
                        tokio::spawn(async move {
                            let _ = conn.await;
                        });
                        client
                    }
                    Err(e) => {
                        return (
                            0,
                            vec![format!(
                                "connect: {:?}",
                                e.as_db_error().map(|d| d.message().to_owned())
                            )],
                        )
                    }
                };
                while !stop.load(SeqCst) {
                    match client.simple_query("SELECT pg_sleep(0.005)").await {
                        Ok(_) => done += 1,
                        Err(e) => {
                            errors.push(e.to_string());
                            break;
                        }
                    }
                }
                (done, errors)
            })
        })
        .collect()
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<(u64, Vec<String>)>>) -> (u64, Vec<String>) {
    let mut done = 0;
    let mut errors = Vec::new();
    for t in tasks {
        let (d, e) = t.await.expect("client task");
        done += d;
        errors.extend(e);
    }
    (done, errors)
}

fn held(admin: SocketAddr) -> f64 {
    kit::admin_http::metric_sum(admin, "maitred_fleet_tokens_held")
}

async fn held_now(admin: SocketAddr) -> f64 {
    tokio::task::spawn_blocking(move || held(admin))
        .await
        .expect("metrics")
}

/// 5 replicas, budget 15, 40 clients each: never above 15, no client error. Then kill -9
/// of one replica under load: the others' clients see no error and take its tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_replicas_never_exceed_the_budget_and_survive_a_kill() {
    let _serial = kit::serial().await;
    let Some(url) = kit::require_pg() else { return };
    let Some(superuser) = kit::require_pg_superuser() else {
        return;
    };
    const BUDGET: usize = 15;
    let mut replicas: Vec<(Maitred, SocketAddr)> = (0..5)
        .map(|_| replica(&url, "e2e-budget", BUDGET, 10, "2s"))
        .collect();
    let observer = observe(&superuser, app_user(&url)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (m, _) in &replicas {
        tasks.push(drive(m.url_for(&url), 40, stop.clone()));
    }
    tokio::time::sleep(Duration::from_secs(load_secs())).await;
    let peak_load = observer.peak();
    let mut held_at = Vec::new();
    for (_, admin) in &replicas {
        held_at.push(held_now(*admin).await);
    }

    // kill -9 of replica 0 while the others keep going.
    let survivors_before: f64 = held_at[1..].iter().sum();
    let (mut killed, _) = replicas.remove(0);
    let victim_tasks = tasks.remove(0);
    let killed_at = Instant::now();
    // SIGKILL (Child::kill), not a drain.
    killed.kill();
    let mut recovered = None;
    while killed_at.elapsed() < Duration::from_secs(15) {
        let mut sum = 0.0;
        for (_, admin) in &replicas {
            sum += held_now(*admin).await;
        }
        if sum > survivors_before {
            recovered = Some(killed_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
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
        "FLEET peak={peak} budget={BUDGET} samples={samples} peak_during_load={peak_load} \
         queries={} held={held_at:?} load_secs={} recovered_after_kill={recovered:?}",
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

/// One replica driven hard while the others idle ends up with most tokens; they flow back
/// when the others get busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_move_to_the_busy_replica_and_back() {
    let _serial = kit::serial().await;
    let Some(url) = kit::require_pg() else { return };
    let Some(superuser) = kit::require_pg_superuser() else {
        return;
    };
    const BUDGET: usize = 12;
    let replicas: Vec<(Maitred, SocketAddr)> = (0..3)
        .map(|_| replica(&url, "e2e-moves", BUDGET, 10, "1s"))
        .collect();
    let observer = observe(&superuser, app_user(&url)).await;
    let stop_hard = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let hard = drive(replicas[0].0.url_for(&url), 40, stop_hard.clone());
    // 3 coordination tokens, the 2 idle replicas keep their one: 12 - 3 - 2 = 7 for it.
    let mut moved = None;
    while t0.elapsed() < Duration::from_secs(15) {
        if held_now(replicas[0].1).await >= 7.0 {
            moved = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The others get busy: replica 0 comes down to its fair share, ceil(9 / 3) = 3 (+1).
    let stop_others = Arc::new(AtomicBool::new(false));
    let t1 = Instant::now();
    let mut others = Vec::new();
    for (m, _) in &replicas[1..] {
        others.push(drive(m.url_for(&url), 40, stop_others.clone()));
    }
    let mut back = None;
    while t1.elapsed() < Duration::from_secs(15) {
        let a = held_now(replicas[1].1).await;
        let b = held_now(replicas[2].1).await;
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
    println!("FLEET moves: to the busy replica after {moved:?}, back to the others after {back:?}, peak={peak} budget={BUDGET}");
    assert!(peak <= BUDGET, "peak {peak} above budget {BUDGET}");
    assert!(errors.is_empty(), "{errors:?}");
    assert!(moved.is_some(), "the busy replica never got most tokens");
    assert!(back.is_some(), "the tokens never flowed back");
}

/// A scale-up from 2 to 6 replicas under load never takes the total over the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_up_from_two_to_six_replicas_stays_within_the_budget() {
    let _serial = kit::serial().await;
    let Some(url) = kit::require_pg() else { return };
    let Some(superuser) = kit::require_pg_superuser() else {
        return;
    };
    const BUDGET: usize = 15;
    let observer = observe(&superuser, app_user(&url)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut replicas = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let r = replica(&url, "e2e-scale", BUDGET, 10, "2s");
        tasks.push(drive(r.0.url_for(&url), 20, stop.clone()));
        replicas.push(r);
        if i >= 1 {
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, SeqCst);
    let mut errors = Vec::new();
    for t in tasks {
        errors.extend(collect(t).await.1);
    }
    let (peak, samples) = observer.finish().await;
    println!("FLEET scale-up 2 -> 6: peak={peak} budget={BUDGET} samples={samples}");
    assert!(peak <= BUDGET, "peak {peak} above budget {BUDGET}");
    assert!(errors.is_empty(), "{errors:?}");
}

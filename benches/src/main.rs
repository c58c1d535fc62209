//! maitred-bench: load generator.
//!
//! `maitred-bench idle <url> <clients> <pid>`: opens `clients` PostgreSQL connections that
//! log in and sit idle, then reports the resident memory of process `pid` (the proxy) per
//! client: (RSS with the clients − RSS before) / clients. Run with a high `ulimit -n`.

use std::time::{Duration, Instant};

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn idle(url: &str, clients: usize, pid: u32) -> Result<(), String> {
    let before = rss_kib(pid).ok_or(format!("cannot read /proc/{pid}/status"))?;
    let started = Instant::now();
    let mut held = Vec::with_capacity(clients);
    let mut failures = 0usize;
    for i in 0..clients {
        match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                held.push(client);
            }
            Err(e) => {
                failures += 1;
                if failures <= 3 {
                    eprintln!("connect {i}: {e}");
                }
            }
        }
        if (i + 1) % 1000 == 0 {
            eprintln!(
                "{} clients logged in ({:.1}s)",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    // One query per client proves they are all usable, then let the proxy settle.
    for c in held.iter().take(10) {
        c.simple_query("select 1")
            .await
            .map_err(|e| e.to_string())?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid).ok_or("proxy exited")?;
    let n = held.len().max(1) as f64;
    println!(
        "{{\"clients\": {}, \"failures\": {failures}, \"rss_before_kib\": {before}, \"rss_after_kib\": {after}, \"bytes_per_client\": {:.0}}}",
        held.len(),
        (after.saturating_sub(before) as f64 * 1024.0) / n
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let run = match args.get(1).map(String::as_str) {
        Some("idle") if args.len() == 5 => {
            let (Ok(n), Ok(pid)) = (args[3].parse::<usize>(), args[4].parse::<u32>()) else {
                eprintln!("usage: maitred-bench idle <url> <clients> <pid>");
                return std::process::ExitCode::from(2);
            };
            let url = args[2].clone();
            move |rt: tokio::runtime::Runtime| rt.block_on(idle(&url, n, pid))
        }
        _ => {
            eprintln!("usage: maitred-bench idle <url> <clients> <pid>");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match run(rt) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("maitred-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! maitred-bench: load generator for maitred, PgBouncer and the servers themselves, speaking
//! PostgreSQL, MySQL and MongoDB through the real driver crates.
//!
//! ```text
//! maitred-bench setup  URL [--rows N]                       create and fill maitred_bench
//! maitred-bench steady URL --clients N --duration 10s       N clients loop a workload
//! maitred-bench storm  URL --clients N --duration 10s       connect, one unit, disconnect
//! maitred-bench idle   URL CLIENTS PID                      idle clients, RSS of PID per client
//! maitred-bench report DIR [--doc FILE] [--plots DIR]       tables (and plots) of a comparison
//! maitred-bench plot   DIR OUT                              only the SVG plots
//! ```
//!
//! The URL's scheme picks the protocol (postgres://, mysql://, mongodb://). steady, storm
//! and idle print a progress line on stderr once a second, a summary on stdout, and the
//! full result with `--json FILE`. benches/compare.sh runs them side by side.

mod plot;
mod report;
mod run;
mod stats;
mod summary;
mod target;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::run::Spec;
use crate::target::{Protocol, Workload};

#[derive(Debug, Parser)]
#[command(
    name = "maitred-bench",
    about = "Load generator and benchmark report for maitred"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the workload table (collection) and fill it with --rows rows.
    Setup {
        url: String,
        #[arg(long, default_value_t = target::DEFAULT_ROWS)]
        rows: u32,
    },
    /// N clients connect, then each loops one unit of work for the duration.
    Steady(Load),
    /// N clients each loop: connect, one unit of work, disconnect.
    Storm(Load),
    /// CLIENTS clients log in and sit idle; reports the resident memory of PID per client.
    Idle {
        url: String,
        clients: usize,
        pid: u32,
        /// Rows in the table (a few clients run one point select each).
        #[arg(long, default_value_t = target::DEFAULT_ROWS)]
        rows: u32,
        #[command(flatten)]
        out: Output,
    },
    /// Fold DIR/run-*.json into DIR/summary.json, print the markdown section, and with
    /// --doc replace it in that file; with --plots also write the SVG plots there.
    Report {
        dir: PathBuf,
        #[arg(long)]
        doc: Option<PathBuf>,
        #[arg(long)]
        plots: Option<PathBuf>,
    },
    /// Write the SVG plots of DIR/run-*.json to OUT.
    Plot { dir: PathBuf, out: PathBuf },
}

#[derive(Debug, Args)]
struct Load {
    url: String,
    #[arg(long, default_value_t = 10)]
    clients: usize,
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Default: point-select for PostgreSQL and MySQL, insert-find for MongoDB.
    #[arg(long, value_enum)]
    workload: Option<Workload>,
    /// Rows in the table (ids are drawn from 1..=rows).
    #[arg(long, default_value_t = target::DEFAULT_ROWS)]
    rows: u32,
    /// Bound on one connect or one unit of work.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    op_timeout: Duration,
    #[command(flatten)]
    out: Output,
}

#[derive(Debug, Args)]
struct Output {
    /// Write the full result as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// KEY=VALUE stored in the result (compare.sh: target=maitred, round=2).
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or("expected KEY=VALUE")?;
    Ok((k.to_owned(), v.to_owned()))
}

fn spec(
    url: String,
    workload: Option<Workload>,
    clients: usize,
    out: &Output,
) -> Result<Spec, String> {
    let protocol = Protocol::of_url(&url)?;
    let workload = workload.unwrap_or(protocol.default_workload());
    workload.check(protocol)?;
    if clients == 0 {
        return Err("--clients must be at least 1".to_owned());
    }
    Ok(Spec {
        url,
        protocol,
        workload,
        clients,
        duration: Duration::from_secs(10),
        rows: target::DEFAULT_ROWS,
        op_timeout: Duration::from_secs(10),
        labels: out.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
    })
}

fn load_spec(l: Load) -> Result<(Spec, Output), String> {
    let mut s = spec(l.url, l.workload, l.clients, &l.out)?;
    s.duration = l.duration;
    s.rows = l.rows;
    s.op_timeout = l.op_timeout;
    Ok((s, l.out))
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Setup { url, rows } => {
            target::setup(&url, rows).await?;
            println!(
                "{} rows in {} at {}",
                rows,
                target::TABLE,
                stats::address_of(&url)
            );
            Ok(())
        }
        Command::Steady(l) => {
            let (s, out) = load_spec(l)?;
            run::steady(s).await.emit(out.json.as_deref())
        }
        Command::Storm(l) => {
            let (s, out) = load_spec(l)?;
            run::storm(s).await.emit(out.json.as_deref())
        }
        Command::Idle {
            url,
            clients,
            pid,
            rows,
            out,
        } => {
            let mut s = spec(url, None, clients, &out)?;
            s.rows = rows;
            run::idle(s, pid).await?.emit(out.json.as_deref())
        }
        Command::Report { dir, doc, plots } => {
            let summary = summary::load_dir(&dir)?;
            let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
            std::fs::write(dir.join("summary.json"), text).map_err(|e| e.to_string())?;
            let rel = match (&doc, &plots) {
                (Some(d), Some(p)) => Some(relative_to(p, d.parent().unwrap_or(d.as_path()))),
                (None, Some(p)) => Some(p.display().to_string()),
                _ => None,
            };
            if let Some(p) = &plots {
                for f in plot::write_all(&summary, p)? {
                    eprintln!("wrote {}", f.display());
                }
            }
            let section = report::markdown(&summary, rel.as_deref());
            match doc {
                Some(d) => {
                    let old =
                        std::fs::read_to_string(&d).unwrap_or_else(|_| "# Benchmarks\n".to_owned());
                    std::fs::write(&d, report::splice(&old, &section))
                        .map_err(|e| format!("cannot write {}: {e}", d.display()))?;
                    eprintln!("updated {}", d.display());
                }
                None => print!("{section}"),
            }
            Ok(())
        }
        Command::Plot { dir, out } => {
            let summary = summary::load_dir(&dir)?;
            for f in plot::write_all(&summary, &out)? {
                println!("wrote {}", f.display());
            }
            Ok(())
        }
    }
}

/// `path` as seen from `base` when it lies below it, else `path` itself.
fn relative_to(path: &std::path::Path, base: &std::path::Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("maitred-bench: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("maitred-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

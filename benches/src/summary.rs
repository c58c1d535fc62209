//! Folds the per-run JSON files of a comparison (`run-*.json`, labelled with `target` and
//! `round`) into one row per protocol, mode, workload, target and client count: medians
//! over the rounds, errors summed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::stats::{Latency, RunResult};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Row {
    pub protocol: String,
    pub mode: String,
    pub workload: String,
    pub target: String,
    pub clients: usize,
    pub rounds: usize,
    /// Median over the rounds.
    pub ops_per_s: f64,
    /// Each percentile is the median of that percentile over the rounds.
    pub latency_ms: Latency,
    pub errors: BTreeMap<String, u64>,
    pub error_total: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_client: Option<f64>,
}

/// Everything `report` and `plot` need: the machine, the command and the rows.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Free-form lines about the machine and the server versions (machine.txt).
    pub machine: Vec<String>,
    /// Settings of the comparison (settings.txt).
    pub settings: Vec<String>,
    pub rows: Vec<Row>,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One row per group of runs.
pub fn fold(runs: &[RunResult]) -> Vec<Row> {
    let mut groups: BTreeMap<(String, String, String, String, usize), Vec<&RunResult>> =
        BTreeMap::new();
    for r in runs {
        groups
            .entry((
                r.protocol.clone(),
                r.mode.clone(),
                r.workload.clone(),
                r.label("target").to_owned(),
                r.clients,
            ))
            .or_default()
            .push(r);
    }
    groups
        .into_iter()
        .map(|((protocol, mode, workload, target, clients), rs)| {
            let pick =
                |f: &dyn Fn(&Latency) -> f64| median(rs.iter().map(|r| f(&r.latency_ms)).collect());
            let mut errors = BTreeMap::new();
            for r in &rs {
                for (k, n) in &r.errors {
                    *errors.entry(k.clone()).or_insert(0) += n;
                }
            }
            let bytes: Vec<f64> = rs.iter().filter_map(|r| r.bytes_per_client).collect();
            Row {
                protocol,
                mode,
                workload,
                target,
                clients,
                rounds: rs.len(),
                ops_per_s: median(rs.iter().map(|r| r.ops_per_s).collect()),
                latency_ms: Latency {
                    mean: pick(&|l| l.mean),
                    p50: pick(&|l| l.p50),
                    p90: pick(&|l| l.p90),
                    p99: pick(&|l| l.p99),
                    p999: pick(&|l| l.p999),
                    max: pick(&|l| l.max),
                },
                error_total: errors.values().sum(),
                errors,
                bytes_per_client: (!bytes.is_empty()).then(|| median(bytes)),
            }
        })
        .collect()
}

/// Reads `dir/run-*.json`, `dir/machine.txt` and `dir/settings.txt`.
pub fn load_dir(dir: &Path) -> Result<Summary, String> {
    let mut runs = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("run-") && name.ends_with(".json")) {
            continue;
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let run: RunResult =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        runs.push(run);
    }
    if runs.is_empty() {
        return Err(format!("no run-*.json in {}", dir.display()));
    }
    let lines = |f: &str| -> Vec<String> {
        std::fs::read_to_string(dir.join(f))
            .map(|t| {
                t.lines()
                    .map(str::to_owned)
                    .filter(|l| !l.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(Summary {
        machine: lines("machine.txt"),
        settings: lines("settings.txt"),
        rows: fold(&runs),
    })
}

impl Summary {
    pub fn rows<'a, 'k>(
        &'a self,
        protocol: &'k str,
        mode: &'k str,
    ) -> impl Iterator<Item = &'a Row> + use<'a, 'k> {
        self.rows
            .iter()
            .filter(move |r| r.protocol == protocol && r.mode == mode)
    }

    pub fn find(&self, protocol: &str, mode: &str, target: &str, clients: usize) -> Option<&Row> {
        self.rows(protocol, mode)
            .find(|r| r.target == target && r.clients == clients)
    }

    /// The steady row of `target` with the most clients (not the 1-client latency run).
    pub fn busiest(&self, protocol: &str, target: &str) -> Option<&Row> {
        self.rows(protocol, "steady")
            .filter(|r| r.target == target && r.clients > 1)
            .max_by_key(|r| r.clients)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(target: &str, round: u32, ops: f64, p50: f64, errors: &[(&str, u64)]) -> RunResult {
        RunResult {
            mode: "steady".into(),
            protocol: "postgres".into(),
            workload: "point-select".into(),
            labels: [
                ("target".to_owned(), target.to_owned()),
                ("round".to_owned(), round.to_string()),
            ]
            .into_iter()
            .collect(),
            clients: 200,
            ops_per_s: ops,
            latency_ms: Latency {
                p50,
                ..Latency::default()
            },
            errors: errors.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect(),
            ..RunResult::default()
        }
    }

    #[test]
    fn medians_per_target_and_errors_summed() {
        let runs = vec![
            run("maitred", 1, 100.0, 2.0, &[]),
            run("pgbouncer", 1, 90.0, 3.0, &[("io", 1)]),
            run("maitred", 2, 300.0, 1.0, &[]),
            run("pgbouncer", 2, 80.0, 5.0, &[("io", 2)]),
            run("maitred", 3, 200.0, 9.0, &[]),
        ];
        let rows = fold(&runs);
        assert_eq!(rows.len(), 2);
        let m = rows
            .iter()
            .find(|r| r.target == "maitred")
            .expect("maitred row");
        assert_eq!(
            (m.rounds, m.ops_per_s, m.latency_ms.p50, m.error_total),
            (3, 200.0, 2.0, 0)
        );
        let b = rows
            .iter()
            .find(|r| r.target == "pgbouncer")
            .expect("pgbouncer row");
        assert_eq!((b.rounds, b.ops_per_s, b.latency_ms.p50), (2, 85.0, 4.0));
        assert_eq!(b.errors["io"], 3);
    }
}

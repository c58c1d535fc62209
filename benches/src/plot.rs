//! SVG plots of a comparison (plotters): per protocol, throughput vs clients (one line per
//! target) and the latency percentiles of each target's busiest steady run.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::summary::{Row, Summary};

const SIZE: (u32, u32) = (760, 440);

fn color(target: &str, i: usize) -> RGBColor {
    match target {
        "maitred" => RGBColor(31, 119, 180),
        "pgbouncer" => RGBColor(214, 39, 40),
        "straight" => RGBColor(40, 40, 40),
        _ => {
            let c = Palette99::pick(i + 3).to_rgba();
            RGBColor(c.0, c.1, c.2)
        }
    }
}

fn targets(rows: &[&Row]) -> Vec<String> {
    let mut t: Vec<String> = rows.iter().map(|r| r.target.clone()).collect();
    t.sort();
    t.dedup();
    t
}

fn err(e: impl std::fmt::Display) -> String {
    format!("plot: {e}")
}

/// Writes `<dir>/<protocol>-throughput.svg` and `<dir>/<protocol>-latency.svg` for every
/// protocol with steady runs; returns the files written.
pub fn write_all(s: &Summary, dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    let mut protocols: Vec<&str> = s.rows.iter().map(|r| r.protocol.as_str()).collect();
    protocols.sort();
    protocols.dedup();
    for p in protocols {
        let rows: Vec<&Row> = s.rows(p, "steady").filter(|r| r.clients > 1).collect();
        if rows.is_empty() {
            continue;
        }
        let path = dir.join(format!("{p}-throughput.svg"));
        throughput(p, &rows, &path)?;
        written.push(path);
        let path = dir.join(format!("{p}-latency.svg"));
        latency(s, p, &rows, &path)?;
        written.push(path);
    }
    Ok(written)
}

fn throughput(protocol: &str, rows: &[&Row], path: &Path) -> Result<(), String> {
    let max_x = rows.iter().map(|r| r.clients).max().unwrap_or(1) as u32;
    let max_y = rows.iter().map(|r| r.ops_per_s).fold(1.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{protocol}: throughput vs clients"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0u32..max_x + max_x / 20 + 1, 0f64..max_y)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("clients")
        .y_desc("units of work per second")
        .draw()
        .map_err(err)?;
    for (i, t) in targets(rows).iter().enumerate() {
        let c = color(t, i);
        let mut pts: Vec<(u32, f64)> = rows
            .iter()
            .filter(|r| &r.target == t)
            .map(|r| (r.clients as u32, r.ops_per_s))
            .collect();
        pts.sort_by_key(|p| p.0);
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(err)?
            .label(t.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, c.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

const PERCENTILES: [&str; 4] = ["p50", "p90", "p99", "p99.9"];

fn latency(s: &Summary, protocol: &str, rows: &[&Row], path: &Path) -> Result<(), String> {
    let busiest: Vec<&Row> = targets(rows)
        .iter()
        .filter_map(|t| s.busiest(protocol, t))
        .collect();
    let values = |r: &Row| {
        let l = &r.latency_ms;
        [l.p50, l.p90, l.p99, l.p999].map(|v| v.max(0.001))
    };
    let max_y = busiest.iter().flat_map(|r| values(r)).fold(0.01, f64::max) * 2.0;
    let min_y = busiest
        .iter()
        .flat_map(|r| values(r))
        .fold(f64::MAX, f64::min)
        .min(max_y / 4.0)
        / 2.0;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{protocol}: latency percentiles (busiest run of each target)"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.3f64..3.3f64, (min_y..max_y).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(4)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.01 && (0.0..4.0).contains(&i) {
                PERCENTILES[i as usize].to_owned()
            } else {
                String::new()
            }
        })
        .y_desc("milliseconds (log scale)")
        .draw()
        .map_err(err)?;
    for (i, r) in busiest.iter().enumerate() {
        let c = color(&r.target, i);
        let pts: Vec<(f64, f64)> = values(r)
            .into_iter()
            .enumerate()
            .map(|(x, y)| (x as f64, y))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(err)?
            .label(format!("{} ({} clients)", r.target, r.clients))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, c.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Latency;

    #[test]
    fn writes_both_svgs_with_every_target() {
        let row = |target: &str, clients: usize, ops: f64| Row {
            protocol: "postgres".into(),
            mode: "steady".into(),
            workload: "point-select".into(),
            target: target.into(),
            clients,
            rounds: 1,
            ops_per_s: ops,
            latency_ms: Latency {
                mean: 1.0,
                p50: 1.0,
                p90: 2.0,
                p99: 4.0,
                p999: 8.0,
                max: 9.0,
            },
            errors: Default::default(),
            error_total: 0,
            bytes_per_client: None,
        };
        let s = Summary {
            rows: vec![
                row("straight", 10, 1000.0),
                row("maitred", 10, 900.0),
                row("maitred", 200, 950.0),
            ],
            ..Summary::default()
        };
        let dir = std::env::temp_dir().join(format!("maitred-bench-plot-{}", std::process::id()));
        let files = write_all(&s, &dir).expect("plots");
        assert_eq!(files.len(), 2);
        let svg = std::fs::read_to_string(dir.join("postgres-throughput.svg")).expect("svg");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(100)]);
        assert!(svg.contains("maitred") && svg.contains("straight"));
        let lat = std::fs::read_to_string(dir.join("postgres-latency.svg")).expect("svg");
        assert!(lat.contains("p99.9") && lat.contains("maitred (200 clients)"));
        let _ = std::fs::remove_dir_all(dir);
    }
}

//! The suite's results and how they are written: the markdown tables (`results.md`), the JSON
//! file (`results.json`) and the data of the two charts.

use serde::Serialize;

use super::chart::BarChart;
use super::stats::{geomean, median, ratio};

/// One successful repetition of a cell.
#[derive(Debug, Clone)]
pub struct Sample {
    pub wall_s: f64,
    pub max_rss_kib: u64,
    pub end_rss_kib: Option<u64>,
}

/// One workload run with one allocator, over all repetitions.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    pub samples: Vec<Sample>,
    /// One line per failed repetition.
    pub failures: Vec<String>,
}

impl Cell {
    /// A cell with any failed repetition has no value.
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && !self.samples.is_empty()
    }
    pub fn time(&self) -> Option<f64> {
        self.value(|s| Some(s.wall_s))
    }
    pub fn max_rss_kib(&self) -> Option<f64> {
        self.value(|s| Some(s.max_rss_kib as f64))
    }
    pub fn end_rss_kib(&self) -> Option<f64> {
        self.value(|s| s.end_rss_kib.map(|k| k as f64))
    }
    fn value(&self, f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        if !self.ok() {
            return None;
        }
        let values: Option<Vec<f64>> = self.samples.iter().map(f).collect();
        median(&values?)
    }
}

/// Everything the suite measured.
#[derive(Debug, Clone)]
pub struct Results {
    /// Allocator names, as columns; `ferroc` is the reference.
    pub allocators: Vec<String>,
    /// Workload names, as rows.
    pub workloads: Vec<String>,
    /// `cells[w][a]`.
    pub cells: Vec<Vec<Cell>>,
    /// Lines describing the run: command, machine, versions.
    pub about: Vec<(String, String)>,
    /// What each workload does and its arguments, listed under the tables.
    pub descriptions: Vec<String>,
}

/// The reference allocator of every ratio.
pub const REFERENCE: &str = "ferroc";

/// Which value of a cell a table shows.
#[derive(Clone, Copy)]
enum Metric {
    Time,
    PeakRss,
    EndRss,
}

impl Metric {
    fn of(self, cell: &Cell) -> Option<f64> {
        match self {
            Metric::Time => cell.time(),
            Metric::PeakRss => cell.max_rss_kib(),
            Metric::EndRss => cell.end_rss_kib(),
        }
    }
    fn format(self, v: f64) -> String {
        match self {
            Metric::Time => format!("{v:.3} s"),
            Metric::PeakRss | Metric::EndRss => format!("{:.1} MiB", v / 1024.0),
        }
    }
}

impl Results {
    fn reference(&self) -> Option<usize> {
        self.allocators.iter().position(|a| a == REFERENCE)
    }

    /// Each allocator's value divided by Ferroc's, per workload.
    fn ratios(&self, metric: Metric) -> Vec<Vec<Option<f64>>> {
        let reference = self.reference();
        self.cells
            .iter()
            .map(|row| {
                let base = reference.and_then(|r| metric.of(&row[r]));
                row.iter().map(|c| ratio(metric.of(c), base)).collect()
            })
            .collect()
    }

    /// Each allocator's geometric mean of its ratios, over the workloads where it and Ferroc
    /// both succeeded.
    fn geomeans(&self, metric: Metric) -> Vec<Option<f64>> {
        let ratios = self.ratios(metric);
        (0..self.allocators.len())
            .map(|a| {
                let column: Vec<f64> = ratios.iter().filter_map(|row| row[a]).collect();
                geomean(&column)
            })
            .collect()
    }

    /// Column order: Ferroc first, then the others as run.
    fn column_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.allocators.len()).collect();
        order.sort_by_key(|&a| self.allocators[a] != REFERENCE);
        order
    }

    /// The markdown of `results.md`: the run's description, a time table and a memory table.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        for (key, value) in &self.about {
            out.push_str(&format!("- {key}: {value}\n"));
        }
        out.push('\n');
        out.push_str(
            "Time: median wall time. In parentheses: the ratio to Ferroc (above 1: slower than \
             Ferroc).\n\n",
        );
        out.push_str(&self.table(Metric::Time, &[]));
        out.push_str(
            "\nMemory: median peak resident memory (`ru_maxrss`). In parentheses: the ratio to \
             Ferroc (above 1: more memory than Ferroc). The last row, not in the geometric \
             mean, is peak-fall's resident memory at its end, after the fall.\n\n",
        );
        out.push_str(&self.table(Metric::PeakRss, &[("peak-fall", "peak-fall: RSS at end")]));
        if !self.descriptions.is_empty() {
            out.push_str(
                "\nWorkloads (`benches/workloads/`, run as `<program> <threads> <args>`):\n\n",
            );
            for line in &self.descriptions {
                out.push_str(&format!("- {line}\n"));
            }
        }
        let failures = self.failure_lines();
        if !failures.is_empty() {
            out.push_str("\nFailures:\n\n");
            for line in failures {
                out.push_str(&format!("- {line}\n"));
            }
        }
        out
    }

    /// One table; `extra` rows show the end RSS of the named workloads after the geomean row.
    fn table(&self, metric: Metric, extra: &[(&str, &str)]) -> String {
        let order = self.column_order();
        let mut out = String::from("| workload |");
        for &a in &order {
            out.push_str(&format!(" {} |", self.allocators[a]));
        }
        out.push_str("\n|:--|");
        out.push_str(&"--:|".repeat(order.len()));
        out.push('\n');
        let ratios = self.ratios(metric);
        for (w, name) in self.workloads.iter().enumerate() {
            out.push_str(&self.row(name, &self.cells[w], &ratios[w], metric, &order));
        }
        out.push_str("| **geometric mean** |");
        for (a, g) in order.iter().map(|&a| (a, self.geomeans(metric)[a])) {
            let text = match g {
                Some(g) if self.allocators[a] == REFERENCE => format!("{g:.2}"),
                Some(g) => format!("×{g:.2}"),
                None => "–".to_owned(),
            };
            out.push_str(&format!(" **{text}** |"));
        }
        out.push('\n');
        let end = self.ratios(Metric::EndRss);
        for (workload, label) in extra {
            if let Some(w) = self.workloads.iter().position(|n| n == workload) {
                out.push_str(&self.row(label, &self.cells[w], &end[w], Metric::EndRss, &order));
            }
        }
        out
    }

    fn row(
        &self,
        label: &str,
        cells: &[Cell],
        ratios: &[Option<f64>],
        metric: Metric,
        order: &[usize],
    ) -> String {
        let mut out = format!("| {label} |");
        for &a in order {
            let text = match (metric.of(&cells[a]), ratios[a]) {
                _ if !cells[a].ok() => "FAILED".to_owned(),
                (Some(v), _) if self.allocators[a] == REFERENCE => metric.format(v),
                (Some(v), Some(r)) => format!("{} (×{r:.2})", metric.format(v)),
                (Some(v), None) => metric.format(v),
                (None, _) => "–".to_owned(),
            };
            out.push_str(&format!(" {text} |"));
        }
        out.push('\n');
        out
    }

    /// `workload / allocator: what failed`, one line per failed repetition.
    pub fn failure_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (w, row) in self.cells.iter().enumerate() {
            for (a, cell) in row.iter().enumerate() {
                for f in &cell.failures {
                    lines.push(format!(
                        "{} / {}: {f}",
                        self.workloads[w], self.allocators[a]
                    ));
                }
            }
        }
        lines
    }

    /// Whether any of Ferroc's cells failed.
    pub fn reference_failed(&self) -> bool {
        self.reference()
            .is_some_and(|r| self.cells.iter().any(|row| !row[r].ok()))
    }

    /// The relative-time chart: one group per workload and one for the geometric mean.
    pub fn time_chart(&self) -> BarChart {
        self.chart(
            Metric::Time,
            "Wall time relative to Ferroc (lower is faster)",
            "time / Ferroc's time",
            &[],
        )
    }

    /// The relative-memory chart, with peak-fall's end RSS as an extra group.
    pub fn memory_chart(&self) -> BarChart {
        self.chart(
            Metric::PeakRss,
            "Peak resident memory relative to Ferroc (lower is smaller)",
            "peak RSS / Ferroc's",
            &[("peak-fall", "peak-fall (end)")],
        )
    }

    fn chart(&self, metric: Metric, title: &str, y: &str, extra: &[(&str, &str)]) -> BarChart {
        let order = self.column_order();
        let ratios = self.ratios(metric);
        let end = self.ratios(Metric::EndRss);
        let geomeans = self.geomeans(metric);
        let mut groups = self.workloads.clone();
        let mut extra_rows = Vec::new();
        for (workload, label) in extra {
            if let Some(w) = self.workloads.iter().position(|n| n == workload) {
                groups.push((*label).to_owned());
                extra_rows.push(w);
            }
        }
        groups.push("geomean".to_owned());
        let series = order
            .iter()
            .map(|&a| {
                let mut values: Vec<Option<f64>> = ratios.iter().map(|row| row[a]).collect();
                values.extend(extra_rows.iter().map(|&w| end[w][a]));
                values.push(geomeans[a]);
                (self.allocators[a].clone(), values)
            })
            .collect();
        BarChart {
            title: title.to_owned(),
            y_label: y.to_owned(),
            groups,
            series,
        }
    }

    /// `results.json`: every sample and failure, the medians, ratios and geometric means.
    pub fn json(&self) -> String {
        let (time_ratios, mem_ratios) = (self.ratios(Metric::Time), self.ratios(Metric::PeakRss));
        let workloads = self
            .workloads
            .iter()
            .zip(&self.cells)
            .enumerate()
            .map(|(w, (name, row))| JsonWorkload {
                name,
                cells: Ordered(
                    self.allocators
                        .iter()
                        .zip(row)
                        .enumerate()
                        .map(|(a, (allocator, c))| {
                            let cell = JsonCell {
                                time_s: rounded(c.time()),
                                peak_rss_kib: rounded(c.max_rss_kib()),
                                end_rss_kib: rounded(c.end_rss_kib()),
                                time_ratio: rounded(time_ratios[w][a]),
                                memory_ratio: rounded(mem_ratios[w][a]),
                                times_s: c
                                    .samples
                                    .iter()
                                    .map(|s| rounded(Some(s.wall_s)))
                                    .collect(),
                                peak_rss_kib_all: c.samples.iter().map(|s| s.max_rss_kib).collect(),
                                failures: &c.failures,
                            };
                            (allocator.as_str(), cell)
                        })
                        .collect(),
                ),
            })
            .collect();
        let (gt, gm) = (self.geomeans(Metric::Time), self.geomeans(Metric::PeakRss));
        let geomean = self
            .allocators
            .iter()
            .enumerate()
            .map(|(a, name)| {
                let ratios = JsonRatios {
                    time_ratio: rounded(gt[a]),
                    memory_ratio: rounded(gm[a]),
                };
                (name.as_str(), ratios)
            })
            .collect();
        let json = JsonResults {
            about: Ordered(
                self.about
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
            ),
            reference: REFERENCE,
            allocators: &self.allocators,
            workloads,
            geomean: Ordered(geomean),
        };
        let mut text = serde_json::to_string_pretty(&json).expect("the results serialize");
        text.push('\n');
        text
    }
}

/// `results.json`, as written.
#[derive(Serialize)]
struct JsonResults<'a> {
    about: Ordered<'a, &'a str>,
    reference: &'static str,
    allocators: &'a [String],
    workloads: Vec<JsonWorkload<'a>>,
    geomean: Ordered<'a, JsonRatios>,
}

#[derive(Serialize)]
struct JsonWorkload<'a> {
    name: &'a str,
    /// By allocator.
    cells: Ordered<'a, JsonCell<'a>>,
}

#[derive(Serialize)]
struct JsonCell<'a> {
    time_s: Option<f64>,
    peak_rss_kib: Option<f64>,
    end_rss_kib: Option<f64>,
    time_ratio: Option<f64>,
    memory_ratio: Option<f64>,
    times_s: Vec<Option<f64>>,
    peak_rss_kib_all: Vec<u64>,
    failures: &'a [String],
}

#[derive(Serialize)]
struct JsonRatios {
    time_ratio: Option<f64>,
    memory_ratio: Option<f64>,
}

/// A JSON object whose members keep the order given (allocators and workloads as run).
struct Ordered<'a, V>(Vec<(&'a str, V)>);

impl<V: Serialize> Serialize for Ordered<'_, V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// A value rounded to 4 decimals (`null` when unknown or not finite).
fn rounded(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite()).map(|v| (v * 1e4).round() / 1e4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(times: &[f64], rss: u64, end: Option<u64>) -> Cell {
        Cell {
            samples: times
                .iter()
                .map(|&t| Sample {
                    wall_s: t,
                    max_rss_kib: rss,
                    end_rss_kib: end,
                })
                .collect(),
            failures: Vec::new(),
        }
    }

    fn results() -> Results {
        let failed = Cell {
            samples: vec![],
            failures: vec!["exit status 4".to_owned()],
        };
        Results {
            allocators: vec!["glibc".into(), "ferroc".into(), "mimalloc".into()],
            workloads: vec!["churn".into(), "peak-fall".into()],
            cells: vec![
                vec![
                    cell(&[2.0, 9.0, 2.0], 2048, None),
                    cell(&[1.0, 1.0, 3.0], 1024, None),
                    failed,
                ],
                vec![
                    cell(&[8.0], 4096, Some(2048)),
                    cell(&[2.0], 2048, Some(1024)),
                    cell(&[1.0], 1024, Some(512)),
                ],
            ],
            about: vec![("command".into(), "cargo xtask suite".into())],
            descriptions: vec!["churn: small blocks".into()],
        }
    }

    #[test]
    fn ratios_and_geomeans() {
        let r = results();
        assert_eq!(
            r.ratios(Metric::Time),
            [
                [Some(2.0), Some(1.0), None],
                [Some(4.0), Some(1.0), Some(0.5)]
            ]
        );
        let g = r.geomeans(Metric::Time);
        assert!((g[0].unwrap() - 8f64.sqrt()).abs() < 1e-12);
        assert_eq!(g[1], Some(1.0));
        // mimalloc failed churn: its mean is over peak-fall alone.
        assert_eq!(g[2], Some(0.5));
        assert!(!r.reference_failed());
        assert_eq!(r.failure_lines(), ["churn / mimalloc: exit status 4"]);
    }

    #[test]
    fn markdown_tables() {
        let md = results().markdown();
        assert!(md.starts_with("- command: cargo xtask suite\n"), "{md}");
        assert!(md.contains("| workload | ferroc | glibc | mimalloc |\n|:--|--:|--:|--:|\n"));
        assert!(
            md.contains("| churn | 1.000 s | 2.000 s (×2.00) | FAILED |\n"),
            "{md}"
        );
        assert!(md.contains("| **geometric mean** | **1.00** | **×2.83** | **×0.50** |\n"));
        assert!(md.contains("| peak-fall | 2.0 MiB | 4.0 MiB (×2.00) | 1.0 MiB (×0.50) |\n"));
        assert!(
            md.contains(
                "| peak-fall: RSS at end | 1.0 MiB | 2.0 MiB (×2.00) | 0.5 MiB (×0.50) |\n"
            )
        );
        assert!(md.contains("- churn / mimalloc: exit status 4\n"));
        assert!(md.contains("- churn: small blocks\n"));
    }

    #[test]
    fn charts_and_json() {
        let r = results();
        let chart = r.memory_chart();
        assert_eq!(
            chart.groups,
            ["churn", "peak-fall", "peak-fall (end)", "geomean"]
        );
        assert_eq!(chart.series[0].0, "ferroc");
        assert_eq!(chart.series[2].1, [None, Some(0.5), Some(0.5), Some(0.5)]);
        let json: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        let churn = &json["workloads"][0];
        assert_eq!(churn["name"], "churn");
        assert_eq!(churn["cells"]["mimalloc"]["failures"][0], "exit status 4");
        assert_eq!(
            churn["cells"]["mimalloc"]["time_s"],
            serde_json::Value::Null
        );
        assert_eq!(
            churn["cells"]["glibc"]["times_s"],
            serde_json::json!([2.0, 9.0, 2.0])
        );
        assert_eq!(json["geomean"]["glibc"]["time_ratio"], 2.8284);
        assert_eq!(json["about"]["command"], "cargo xtask suite");
        // Members in the order run, not sorted.
        let text = r.json();
        let geomean = &text[text.find("\"geomean\"").unwrap()..];
        assert!(geomean.find("\"glibc\"").unwrap() < geomean.find("\"ferroc\"").unwrap());
        assert_eq!(rounded(Some(f64::NAN)), None);
    }
}

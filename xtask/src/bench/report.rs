//! Raw samples (written by the sandboxed passes, read back by the outer process), the table,
//! the aims, and the JSON file with every sample.
//!
//! Raw format, one record per line, tab-separated, appended as measured so a pass that dies
//! still leaves what it had: `sample PHASE N MICROS RSS_KIB|-` and `meta KEY VALUE`.
//! Only probe runs carry a peak memory; latency statistics never include them when plain runs
//! of the same case exist.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::Context as _;

use super::run::Measured;
use super::series::{SeriesPlan, Tool};
use super::{OUT_DIR, Options, Pass};

/// Appends records to a pass's raw file.
#[derive(Debug)]
pub struct RawWriter {
    file: std::fs::File,
    path: PathBuf,
}

impl RawWriter {
    pub fn create(path: &Path) -> anyhow::Result<RawWriter> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(RawWriter {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn sample(&mut self, phase: &str, n: usize, m: &Measured) -> anyhow::Result<()> {
        let rss = m.rss_kib.map_or_else(|| "-".to_string(), |r| r.to_string());
        let line = format!("sample\t{phase}\t{n}\t{}\t{rss}\n", m.elapsed.as_micros());
        self.write(&line)
    }

    pub fn meta(&mut self, key: &str, value: &str) -> anyhow::Result<()> {
        let value = value.replace(['\t', '\n'], " ");
        self.write(&format!("meta\t{key}\t{value}\n"))
    }

    fn write(&mut self, line: &str) -> anyhow::Result<()> {
        self.file
            .write_all(line.as_bytes())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

/// One measured run.
#[derive(Debug, Clone)]
pub struct Sample {
    pub phase: String,
    pub n: usize,
    pub micros: u64,
    pub rss_kib: Option<u64>,
}

impl Sample {
    fn ms(&self) -> f64 {
        std::time::Duration::from_micros(self.micros).as_secs_f64() * 1e3
    }
}

/// What one pass left behind.
#[derive(Debug, Clone)]
pub struct Raw {
    pub pass: Pass,
    pub samples: Vec<Sample>,
    pub meta: BTreeMap<String, String>,
    pub failure: Option<String>,
}

impl Raw {
    /// Reads a raw file; a missing file is a pass that measured nothing.
    pub fn read(pass: Pass, path: &Path) -> anyhow::Result<Raw> {
        let mut raw = Raw {
            pass,
            samples: Vec::new(),
            meta: BTreeMap::new(),
            failure: None,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(raw),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        for (number, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split('\t').collect();
            let bad = || {
                format!(
                    "{}:{}: malformed record {line:?}",
                    path.display(),
                    number + 1
                )
            };
            match fields.as_slice() {
                ["sample", phase, n, micros, rss] => raw.samples.push(Sample {
                    phase: (*phase).to_string(),
                    n: n.parse().with_context(bad)?,
                    micros: micros.parse().with_context(bad)?,
                    rss_kib: if *rss == "-" {
                        None
                    } else {
                        Some(rss.parse().with_context(bad)?)
                    },
                }),
                ["meta", key, value] => {
                    raw.meta.insert((*key).to_string(), (*value).to_string());
                }
                _ => anyhow::bail!(bad()),
            }
        }
        Ok(raw)
    }

    pub fn failed(mut self, why: String) -> Raw {
        self.failure = Some(why);
        self
    }

    /// Plain (non-probe) samples of `phase` with n in `range`; the probes only if there are
    /// no plain ones (a case measured once, under GNU time).
    pub(super) fn latencies(&self, phase: &str, range: std::ops::Range<usize>) -> Vec<f64> {
        let of_case: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.phase == phase && range.contains(&s.n))
            .collect();
        let plain: Vec<f64> = of_case
            .iter()
            .filter(|s| s.rss_kib.is_none())
            .map(|s| s.ms())
            .collect();
        if plain.is_empty() {
            of_case.iter().map(|s| s.ms()).collect()
        } else {
            plain
        }
    }

    fn peak_rss(&self, phase: &str, n: usize) -> Option<u64> {
        self.samples
            .iter()
            .filter(|s| s.phase == phase && s.n == n)
            .filter_map(|s| s.rss_kib)
            .max()
    }
}

/// Median and p95 (nearest rank) of a case, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median: f64,
    pub p95: f64,
    pub count: usize,
}

impl Stats {
    pub fn of(mut values: Vec<f64>) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let count = values.len();
        let median = if count % 2 == 1 {
            values[count / 2]
        } else {
            f64::midpoint(values[count / 2 - 1], values[count / 2])
        };
        // Nearest rank: the smallest value with at least 95% of the samples at or below it.
        let rank = (count * 95).div_ceil(100).max(1);
        Some(Stats {
            median,
            p95: values[rank - 1],
            count,
        })
    }

    fn cell(&self) -> String {
        if self.count == 1 {
            fmt_ms(self.median)
        } else {
            format!("{} / {}", fmt_ms(self.median), fmt_ms(self.p95))
        }
    }
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

fn fmt_ratio(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}")
    } else if r >= 0.1 {
        format!("{r:.2}")
    } else {
        format!("{r:.3}")
    }
}

/// Sizes in KiB, far below 2^52: the conversion is exact.
#[allow(clippy::cast_precision_loss)]
fn to_f64(kib: u64) -> f64 {
    kib as f64
}

fn fmt_mib(kib: u64) -> String {
    format!("{:.1}", to_f64(kib) / 1024.0)
}

/// The machine and the versions of everything measured.
#[derive(Debug, Clone)]
pub struct Environment {
    pub items: Vec<(&'static str, String)>,
}

impl Environment {
    pub fn collect(opts: &Options) -> Environment {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_default();
        let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
        let mem = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kib| kib.parse::<u64>().ok())
            })
            .map(|kib| format!("{:.1} GiB", to_f64(kib) / 1024.0 / 1024.0))
            .unwrap_or_default();
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_default();
        // A binary named by NETCTL may come from anywhere: say so instead of naming a commit.
        let origin = if let Some(path) = std::env::var_os("NETCTL") {
            format!("prebuilt, NETCTL={}", Path::new(&path).display())
        } else {
            let commit = first_line("git", &["rev-parse", "--short", "HEAD"]);
            let dirty = !first_line("git", &["status", "--porcelain"]).is_empty();
            let dirty = if dirty {
                " plus uncommitted changes"
            } else {
                ""
            };
            format!("release build of git {commit}{dirty}")
        };
        let mut items = vec![
            ("cpu", format!("{cpu} ({cores} cpus)")),
            ("memory", mem),
            ("os", os),
            ("kernel", first_line("uname", &["-r"])),
            (
                "netctl",
                format!(
                    "{} ({origin})",
                    opts.netctl_bin
                        .as_ref()
                        .map(|b| first_line(&b.display().to_string(), &["--version"]))
                        .unwrap_or_default(),
                ),
            ),
        ];
        if let Some(bin) = &opts.netavark_bin {
            items.push((
                "netavark",
                format!(
                    "{} ({})",
                    first_line(&bin.display().to_string(), &["--version"]),
                    bin.display()
                ),
            ));
            items.push(("iptables", first_line("iptables", &["--version"])));
        }
        items.push(("nft", first_line("nft", &["--version"])));
        items.push(("ip", first_line("ip", &["-V"])));
        items.push(("load before", super::sandbox::loadavg()));
        Environment { items }
    }

    pub fn summary(&self) -> String {
        let mut text = String::from("xtask bench: machine and versions\n");
        for (key, value) in &self.items {
            let _ = writeln!(text, "  {key:<12} {value}");
        }
        text
    }
}

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// One line of the table.
#[derive(Debug, Clone)]
struct Row {
    case: String,
    netctl: Option<Stats>,
    netavark: Option<Stats>,
    floor: Option<Stats>,
    /// The floor's kernel work from the benchmark's own process.
    inproc: Option<Stats>,
    netctl_rss: Option<u64>,
    netavark_rss: Option<u64>,
}

/// One aim of issue 7, measured.
#[derive(Debug, Clone)]
struct Aim {
    what: &'static str,
    measured: String,
    met: Option<bool>,
}

/// Everything measured in one run.
#[derive(Debug)]
pub struct Report {
    opts: Options,
    env: Environment,
    raws: Vec<Raw>,
}

impl Report {
    pub fn new(opts: &Options, env: Environment, raws: Vec<Raw>) -> Report {
        Report {
            opts: opts.clone(),
            env,
            raws,
        }
    }

    fn raw(&self, pass: Pass) -> Option<&Raw> {
        self.raws.iter().find(|r| r.pass == pass)
    }

    fn plan(&self, pass: Pass) -> Option<SeriesPlan> {
        let tool = match pass {
            Pass::Netctl => Tool::Netctl(PathBuf::new()),
            Pass::Netavark => Tool::Netavark(PathBuf::new()),
            Pass::Floor => Tool::Floor,
            Pass::InProcess => Tool::InProcess,
            Pass::Bulk | Pass::Cni => return None,
        };
        Some(SeriesPlan::new(
            tool.max(&self.opts),
            self.opts.window,
            tool.probes(),
        ))
    }

    /// The series case `phase` at bucket `n` of `pass`.
    fn bucket(&self, pass: Pass, phase: &str, n: usize) -> Option<Stats> {
        let plan = self.plan(pass)?;
        if !plan.buckets.contains(&n) {
            return None;
        }
        Stats::of(self.raw(pass)?.latencies(phase, n..n + plan.window))
    }

    fn bucket_rss(&self, pass: Pass, phase: &str, n: usize) -> Option<u64> {
        let plan = self.plan(pass)?;
        let (_, probe) = plan.probes.iter().find(|(b, _)| *b == n)?;
        self.raw(pass)?.peak_rss(phase, *probe)
    }

    fn bulk(&self, phase: &str) -> Option<Stats> {
        let bulk = self.opts.bulk;
        Stats::of(self.raw(Pass::Bulk)?.latencies(phase, bulk..bulk + 1))
    }

    fn bulk_rss(&self, phase: &str) -> Option<u64> {
        self.raw(Pass::Bulk)?.peak_rss(phase, self.opts.bulk)
    }

    /// The floor of applying the bulk file: the floor's attach of containers 1..=bulk, summed
    /// (only when its series got that far).
    fn floor_apply(&self) -> Option<Stats> {
        let raw = self.raw(Pass::Floor)?;
        let attach: Vec<&Sample> = raw
            .samples
            .iter()
            .filter(|s| s.phase == "attach" && s.n <= self.opts.bulk)
            .collect();
        (attach.len() == self.opts.bulk).then(|| {
            let total = attach.iter().map(|s| s.ms()).sum();
            Stats {
                median: total,
                p95: total,
                count: 1,
            }
        })
    }

    fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        let buckets = self
            .plan(Pass::Netctl)
            .map(|p| p.buckets)
            .unwrap_or_default();
        if self.opts.runs_series() {
            for phase in ["attach", "detach"] {
                for &n in &buckets {
                    rows.push(Row {
                        case: format!("{phase}, N = {n}"),
                        netctl: self.bucket(Pass::Netctl, phase, n),
                        netavark: self.bucket(Pass::Netavark, phase, n),
                        floor: self.bucket(Pass::Floor, phase, n),
                        inproc: self.bucket(Pass::InProcess, phase, n),
                        netctl_rss: self.bucket_rss(Pass::Netctl, phase, n),
                        netavark_rss: self.bucket_rss(Pass::Netavark, phase, n),
                    });
                }
            }
        }
        if self.opts.runs_bulk() {
            let b = self.opts.bulk;
            let p = self.opts.ports;
            for (case, phase, floor) in [
                (
                    format!("apply {b} x {p} ports from empty"),
                    "apply",
                    self.floor_apply(),
                ),
                (
                    format!("no-op re-apply of {b}, right after the apply (unsettled)"),
                    "noop_unsettled",
                    None,
                ),
                (format!("no-op re-apply of {b}"), "noop", None),
                (
                    format!("reload --all of {b} after nft flush"),
                    "reload",
                    self.bulk_floor_reload(),
                ),
                (format!("destroy --all of {b}"), "destroy", None),
            ] {
                rows.push(Row {
                    case,
                    netctl: self.bulk(phase),
                    netavark: None,
                    floor,
                    inproc: None,
                    netctl_rss: self.bulk_rss(phase),
                    netavark_rss: None,
                });
            }
        }
        rows
    }

    fn bulk_floor_reload(&self) -> Option<Stats> {
        let b = self.opts.bulk;
        Stats::of(self.raw(Pass::Floor)?.latencies("reload", b..b + 1))
    }

    /// The table, as Markdown (it goes into docs/PERFORMANCE.md as is).
    pub fn table(&self) -> String {
        let mut text = format!(
            "Times in ms: median / p95 of containers N..N+{} (one process per container, {} \
             published tcp ports each, one bridge network); bulk rows: one run, or median / p95 \
             of repeated runs. Peak RSS in MiB.\n\n",
            self.opts.window - 1,
            self.opts.ports
        );
        text.push_str(
            "| case | netctl | netavark | floor | in-process floor | netctl / netavark | netctl / floor | netctl / in-process floor | netctl peak RSS | netavark peak RSS |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        let cell = |s: Option<Stats>| s.map_or_else(|| "—".to_string(), |s| s.cell());
        let ratio = |a: Option<Stats>, b: Option<Stats>| match (a, b) {
            (Some(a), Some(b)) if b.median > 0.0 => fmt_ratio(a.median / b.median),
            _ => "—".to_string(),
        };
        let mib = |r: Option<u64>| r.map_or_else(|| "—".to_string(), fmt_mib);
        for row in self.rows() {
            let _ = writeln!(
                text,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                row.case,
                cell(row.netctl),
                cell(row.netavark),
                cell(row.floor),
                cell(row.inproc),
                ratio(row.netctl, row.netavark),
                ratio(row.netctl, row.floor),
                ratio(row.netctl, row.inproc),
                mib(row.netctl_rss),
                mib(row.netavark_rss),
            );
        }
        let notes = self.notes();
        if !notes.is_empty() {
            text.push('\n');
            for note in notes {
                let _ = writeln!(text, "* {note}");
            }
        }
        text
    }

    /// What the reader must know to trust the table: stops, checks, failures.
    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for raw in &self.raws {
            let name = raw.pass.name();
            for key in ["attach_stopped", "detach_stopped"] {
                if let Some(v) = raw.meta.get(key) {
                    notes.push(format!("{name}: {v}"));
                }
            }
            for (key, value) in &raw.meta {
                if key.starts_with("verified") {
                    let what = key.trim_start_matches("verified").trim_start_matches('_');
                    let what = if what.is_empty() { "series" } else { what };
                    let verdict = if value == "true" {
                        "answered"
                    } else {
                        "did NOT answer"
                    };
                    notes.push(format!(
                        "{name}: port forward checked from the outside namespace after {what}: {verdict}"
                    ));
                }
            }
            if let Some(v) = raw.meta.get("noop_in_sync") {
                notes.push(format!(
                    "{name}: `netctl plan --detailed-exitcode` after the re-apply: {}",
                    if v == "true" {
                        "in sync"
                    } else {
                        "changes pending"
                    }
                ));
            }
            if let (Some(a), Some(b)) = (raw.meta.get("load_before"), raw.meta.get("load_after")) {
                notes.push(format!("{name}: load average {a} before, {b} after"));
            }
            if let Some(f) = &raw.failure {
                notes.push(format!("{name}: FAILED: {f}"));
            }
        }
        if self.raw(Pass::Floor).is_some() && self.opts.runs_bulk() {
            notes.push(format!(
                "floor for apply: the floor's attach of containers 1..{} summed; for reload: one \
                 `nft -f` of the whole forward map after a flush",
                self.opts.bulk
            ));
        }
        notes
    }

    fn aims(&self) -> Vec<Aim> {
        let mut aims = Vec::new();
        let series = self.plan(Pass::Netctl);
        let last = series.as_ref().and_then(|p| p.buckets.last().copied());
        let first = self.bucket(Pass::Netctl, "attach", 1);
        if let (Some(last), Some(first)) = (last, first) {
            let at = self.bucket(Pass::Netctl, "attach", last);
            let ratio = at.map(|s| s.median / first.median);
            aims.push(Aim {
                what: "the 1000th container attaches no slower than 1.5 x the 1st",
                measured: match ratio {
                    Some(r) => format!(
                        "N = {last}: {} ms vs N = 1: {} ms ({}x)",
                        fmt_ms(at.map_or(0.0, |s| s.median)),
                        fmt_ms(first.median),
                        fmt_ratio(r)
                    ),
                    None => format!("N = {last} not measured"),
                },
                met: ratio.filter(|_| last >= 1000).map(|r| r <= 1.5),
            });
        }
        let n100 = |pass| self.bucket(pass, "attach", 100);
        if let Some(nc) = n100(Pass::Netctl) {
            let floor = n100(Pass::Floor);
            aims.push(Aim {
                what: "attach within 2 x the kernel floor at N = 100",
                measured: floor.map_or_else(
                    || "floor not measured".into(),
                    |f| format!("{}x the floor", fmt_ratio(nc.median / f.median)),
                ),
                met: floor.map(|f| nc.median <= 2.0 * f.median),
            });
            let nv = n100(Pass::Netavark);
            aims.push(Aim {
                what: "attach at least 20 x faster than netavark at N = 100",
                measured: nv.map_or_else(
                    || "netavark not measured".into(),
                    |v| format!("{}x faster", fmt_ratio(v.median / nc.median)),
                ),
                met: nv.map(|v| v.median >= 20.0 * nc.median),
            });
        }
        // Issue 19's aims for the series.
        for (aim, n, limit) in [
            ("attach at N = 1 within 4 ms", 1, 4.0),
            ("attach at N = 100 within 6 ms", 100, 6.0),
        ] {
            if let Some(s) = self.bucket(Pass::Netctl, "attach", n) {
                aims.push(Aim {
                    what: aim,
                    measured: format!("{} ms", fmt_ms(s.median)),
                    met: Some(s.median <= limit),
                });
            }
        }
        if let (Some(nc), Some(floor)) = (
            self.bucket(Pass::Netctl, "detach", 100),
            self.bucket(Pass::Floor, "detach", 100),
        ) {
            aims.push(Aim {
                what: "detach at N = 100 within 1.2 x the floor",
                measured: format!("{}x the floor", fmt_ratio(nc.median / floor.median)),
                met: Some(nc.median <= 1.2 * floor.median),
            });
        }
        let b = self.opts.bulk;
        for (aim, phase, limit) in [
            (
                "no-op re-apply of 1000 containers, settled, under 60 ms",
                "noop",
                60.0,
            ),
            (
                "no-op re-apply of 1000 containers right after the apply, under 100 ms",
                "noop_unsettled",
                100.0,
            ),
            ("`reload --all` of 1000 under 500 ms", "reload", 500.0),
            (
                "1000-container apply from empty within 4 s",
                "apply",
                4000.0,
            ),
            ("`destroy --all` of 1000 within 2 s", "destroy", 2000.0),
        ] {
            if let Some(s) = self.bulk(phase) {
                aims.push(Aim {
                    what: aim,
                    measured: format!("{} ms ({b} containers)", fmt_ms(s.median)),
                    met: (b >= 1000).then_some(s.median <= limit),
                });
            }
        }
        aims
    }

    /// The aims of issue 7, each with what was measured.
    pub fn aims_text(&self) -> String {
        let mut text = String::from("Aims:\n");
        for aim in self.aims() {
            let verdict = match aim.met {
                Some(true) => "met",
                Some(false) => "NOT met",
                None => "not evaluated at this size",
            };
            let _ = writeln!(text, "  [{verdict}] {}: {}", aim.what, aim.measured);
        }
        text
    }

    pub fn first_failure(&self) -> Option<String> {
        self.raws.iter().find_map(|r| {
            r.failure
                .as_ref()
                .map(|f| format!("{}: {f}", r.pass.name()))
        })
    }

    /// Writes every sample, the table's figures and the aims as one JSON document.
    pub fn write_json(&self, started: SystemTime) -> anyhow::Result<PathBuf> {
        let unix = started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let stats = |s: Option<Stats>| {
            s.map_or(Json::Null, |s| {
                Json::Obj(vec![
                    ("median_ms".into(), Json::Num(s.median)),
                    ("p95_ms".into(), Json::Num(s.p95)),
                    ("samples".into(), Json::Int(s.count as u64)),
                ])
            })
        };
        let opt_int = |v: Option<u64>| v.map_or(Json::Null, Json::Int);
        let doc = Json::Obj(vec![
            ("started_unix".into(), Json::Int(unix)),
            (
                "environment".into(),
                Json::Obj(
                    self.env
                        .items
                        .iter()
                        .map(|(k, v)| ((*k).to_string(), Json::Str(v.clone())))
                        .collect(),
                ),
            ),
            (
                "options".into(),
                Json::Obj(vec![
                    ("max".into(), Json::Int(self.opts.max as u64)),
                    ("window".into(), Json::Int(self.opts.window as u64)),
                    (
                        "netavark_max".into(),
                        Json::Int(self.opts.netavark_max as u64),
                    ),
                    ("bulk".into(), Json::Int(self.opts.bulk as u64)),
                    ("ports".into(), Json::Int(self.opts.ports as u64)),
                    ("budget_s".into(), Json::Int(self.opts.budget.as_secs())),
                ]),
            ),
            (
                "table".into(),
                Json::Arr(
                    self.rows()
                        .into_iter()
                        .map(|r| {
                            Json::Obj(vec![
                                ("case".into(), Json::Str(r.case)),
                                ("netctl".into(), stats(r.netctl)),
                                ("netavark".into(), stats(r.netavark)),
                                ("floor".into(), stats(r.floor)),
                                ("netctl_peak_rss_kib".into(), opt_int(r.netctl_rss)),
                                ("netavark_peak_rss_kib".into(), opt_int(r.netavark_rss)),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "aims".into(),
                Json::Arr(
                    self.aims()
                        .into_iter()
                        .map(|a| {
                            Json::Obj(vec![
                                ("aim".into(), Json::Str(a.what.into())),
                                ("measured".into(), Json::Str(a.measured)),
                                ("met".into(), a.met.map_or(Json::Null, Json::Bool)),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "passes".into(),
                Json::Obj(
                    self.raws
                        .iter()
                        .map(|raw| {
                            (
                                raw.pass.name().to_string(),
                                Json::Obj(vec![
                                    (
                                        "failure".into(),
                                        raw.failure.clone().map_or(Json::Null, Json::Str),
                                    ),
                                    (
                                        "meta".into(),
                                        Json::Obj(
                                            raw.meta
                                                .iter()
                                                .map(|(k, v)| (k.clone(), Json::Str(v.clone())))
                                                .collect(),
                                        ),
                                    ),
                                    (
                                        "samples".into(),
                                        Json::Arr(
                                            raw.samples
                                                .iter()
                                                .map(|s| {
                                                    Json::Obj(vec![
                                                        (
                                                            "phase".into(),
                                                            Json::Str(s.phase.clone()),
                                                        ),
                                                        ("n".into(), Json::Int(s.n as u64)),
                                                        ("ms".into(), Json::Num(s.ms())),
                                                        ("rss_kib".into(), opt_int(s.rss_kib)),
                                                    ])
                                                })
                                                .collect(),
                                        ),
                                    ),
                                ]),
                            )
                        })
                        .collect(),
                ),
            ),
        ]);
        let path = Path::new(OUT_DIR).join(format!("bench-{unix}.json"));
        let text = format!("{doc}\n");
        std::fs::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
        std::fs::write(Path::new(OUT_DIR).join("latest.json"), &text)
            .context("cannot write target/bench/latest.json")?;
        Ok(path)
    }
}

/// Just enough JSON to write the results (xtask keeps its dependencies to anyhow).
#[derive(Debug, Clone)]
enum Json {
    Null,
    Bool(bool),
    Int(u64),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl std::fmt::Display for Json {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Json::Bool(b) => write!(f, "{b}"),
            Json::Int(i) => write!(f, "{i}"),
            Json::Num(x) if x.is_finite() => write!(f, "{}", (x * 1000.0).round() / 1000.0),
            // JSON has no NaN or infinity.
            Json::Null | Json::Num(_) => f.write_str("null"),
            Json::Str(s) => write_json_string(f, s),
            Json::Arr(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Json::Obj(fields) => {
                f.write_str("{")?;
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write_json_string(f, key)?;
                    write!(f, ":{value}")?;
                }
                f.write_str("}")
            }
        }
    }
}

fn write_json_string(f: &mut std::fmt::Formatter<'_>, s: &str) -> std::fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_take_median_and_nearest_rank_p95() {
        let s = Stats::of(vec![5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert!((s.median - 3.0).abs() < 1e-9 && (s.p95 - 5.0).abs() < 1e-9);
        let s = Stats::of((1..=100).map(f64::from).collect()).unwrap();
        assert!((s.median - 50.5).abs() < 1e-9 && (s.p95 - 95.0).abs() < 1e-9);
        assert!(Stats::of(Vec::new()).is_none());
    }

    #[test]
    fn json_escapes_strings() {
        let doc = Json::Obj(vec![
            ("a\"b".into(), Json::Str("x\ny\u{1}".into())),
            ("n".into(), Json::Num(1.23456)),
            (
                "l".into(),
                Json::Arr(vec![Json::Null, Json::Bool(true), Json::Int(7)]),
            ),
        ]);
        assert_eq!(
            doc.to_string(),
            r#"{"a\"b":"x\ny\u0001","n":1.235,"l":[null,true,7]}"#
        );
    }

    #[test]
    fn raw_round_trips_and_prefers_plain_runs() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("raw.tsv");
        let mut w = RawWriter::create(&path).unwrap();
        let m = |ms: u64, rss| Measured {
            elapsed: std::time::Duration::from_millis(ms),
            rss_kib: rss,
        };
        w.sample("noop", 10, &m(20, None)).unwrap();
        w.sample("noop", 10, &m(30, Some(9000))).unwrap();
        w.sample("apply", 10, &m(900, Some(12000))).unwrap();
        w.meta("verified", "tr\tue").unwrap();
        drop(w);
        let raw = Raw::read(Pass::Bulk, &path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(raw.latencies("noop", 10..11), [20.0]);
        assert_eq!(raw.latencies("apply", 10..11), [900.0]);
        assert_eq!(raw.peak_rss("noop", 10), Some(9000));
        assert_eq!(raw.meta["verified"], "tr ue");
    }
}

//! Running one measured command: spawn, feed stdin, wait, and time it from before the spawn to
//! after the wait (what a container engine pays per call, process start included).
//!
//! Peak memory comes from a separate probe run under GNU time (`%M`, the child's `ru_maxrss`
//! from wait4), so the wrapper's own fork and exec never sit inside a plain latency sample.
//! Every command has a timeout: a watchdog thread kills it by pid when it overruns.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// One program run: what to start and what to give it on stdin.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
    pub stdin: Vec<u8>,
}

impl Invocation {
    pub fn new(program: impl Into<PathBuf>, args: &[&str]) -> Invocation {
        Invocation {
            program: program.into(),
            args: args.iter().map(OsString::from).collect(),
            env: Vec::new(),
            stdin: Vec::new(),
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Invocation {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn stdin(mut self, text: impl Into<Vec<u8>>) -> Invocation {
        self.stdin = text.into();
        self
    }

    fn describe(&self) -> String {
        let mut text = self.program.display().to_string();
        for arg in &self.args {
            text.push(' ');
            text.push_str(&arg.to_string_lossy());
        }
        text
    }
}

/// What one run cost.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub elapsed: Duration,
    /// Peak resident set of the child in KiB, on probe runs only.
    pub rss_kib: Option<u64>,
}

impl Measured {
    /// Several commands run back to back count as one operation (the floor's attach).
    pub fn add(self, other: Measured) -> Measured {
        Measured {
            elapsed: self.elapsed + other.elapsed,
            rss_kib: match (self.rss_kib, other.rss_kib) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

/// Runs invocations with a timeout each; one per process.
#[derive(Debug)]
pub struct Runner {
    watchdog: Watchdog,
    rss_file: PathBuf,
}

impl Runner {
    /// `scratch` is a directory for GNU time's output file.
    pub fn new(scratch: &Path) -> Runner {
        Runner {
            watchdog: Watchdog::start(),
            rss_file: scratch.join("rss"),
        }
    }

    /// Runs `inv` to completion; an unsuccessful exit is an error carrying its output. With
    /// `probe`, the run goes through GNU time and reports the child's peak memory.
    pub fn run(
        &self,
        inv: &Invocation,
        probe: bool,
        timeout: Duration,
    ) -> anyhow::Result<Measured> {
        self.run_output(inv, probe, timeout).map(|(m, _)| m)
    }

    /// As [`Runner::run`], and returns the child's stdout too.
    pub fn run_output(
        &self,
        inv: &Invocation,
        probe: bool,
        timeout: Duration,
    ) -> anyhow::Result<(Measured, String)> {
        let mut cmd = if probe {
            let mut cmd = Command::new(super::GNU_TIME);
            cmd.arg("-f")
                .arg("%M")
                .arg("-o")
                .arg(&self.rss_file)
                .arg(&inv.program)
                .args(&inv.args);
            cmd
        } else {
            let mut cmd = Command::new(&inv.program);
            cmd.args(&inv.args);
            cmd
        };
        cmd.envs(inv.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());

        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", inv.describe()))?;
        self.watchdog.arm(child.id(), timeout);
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // A child that fails before reading its input closes the pipe; its exit status and
        // output say why, so a broken pipe here is not the error to report.
        if let Err(err) = stdin.write_all(&inv.stdin)
            && err.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(err).with_context(|| format!("cannot write stdin of {}", inv.describe()));
        }
        drop(stdin);
        let output = child.wait_with_output();
        let elapsed = start.elapsed();
        let killed = self.watchdog.disarm();
        let output = output.with_context(|| format!("cannot wait for {}", inv.describe()))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if killed {
            bail!(
                "{} timed out after {timeout:?} and was killed",
                inv.describe()
            );
        }
        if !output.status.success() {
            bail!(
                "{} failed ({}): stdout: {} stderr: {}",
                inv.describe(),
                output.status,
                stdout.trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let rss_kib = if probe {
            let text = std::fs::read_to_string(&self.rss_file)
                .with_context(|| format!("cannot read {}", self.rss_file.display()))?;
            Some(
                text.lines()
                    .last()
                    .and_then(|l| l.trim().parse().ok())
                    .with_context(|| format!("GNU time wrote {text:?}, not a size"))?,
            )
        } else {
            None
        };
        Ok((Measured { elapsed, rss_kib }, stdout))
    }
}

/// Kills the one command in flight when it overruns its deadline. It checks ten times a second,
/// so it costs nothing measurable while commands behave.
#[derive(Debug, Clone)]
struct Watchdog {
    slot: Arc<Mutex<Watched>>,
}

/// The command in flight, and whether the watchdog had to kill the last one.
#[derive(Debug, Default)]
struct Watched {
    /// (pid, deadline)
    armed: Option<(u32, Instant)>,
    fired: bool,
}

impl Watchdog {
    fn start() -> Watchdog {
        let slot = Arc::new(Mutex::new(Watched::default()));
        let watched = Arc::clone(&slot);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(100));
                let mut guard = watched.lock().expect("watchdog lock");
                if let Some((pid, deadline)) = guard.armed
                    && Instant::now() > deadline
                {
                    // By pid: the child is not reaped while it is armed, so the pid is still it.
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                    *guard = Watched {
                        armed: None,
                        fired: true,
                    };
                }
            }
        });
        Watchdog { slot }
    }

    fn arm(&self, pid: u32, timeout: Duration) {
        *self.slot.lock().expect("watchdog lock") = Watched {
            armed: Some((pid, Instant::now() + timeout)),
            fired: false,
        };
    }

    /// Returns whether the watchdog killed the command.
    fn disarm(&self) -> bool {
        std::mem::take(&mut *self.slot.lock().expect("watchdog lock")).fired
    }
}

/// Runs a setup command that is not measured; its failure is an error.
pub fn setup(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {program}"))?;
    setup_outcome(program, args, &out)
}

/// As [`setup`], with text on stdin.
pub fn setup_stdin(program: &str, args: &[&str], stdin: &str) -> anyhow::Result<()> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let mut pipe = child.stdin.take().expect("stdin is piped");
    // Fed from a thread: a large ruleset must not dead-lock against a child writing output.
    let text = stdin.to_owned();
    let feeder = std::thread::spawn(move || pipe.write_all(text.as_bytes()));
    let out = child
        .wait_with_output()
        .with_context(|| format!("cannot wait for {program}"))?;
    let _ = feeder.join();
    setup_outcome(program, args, &out)
}

/// A setup command's failure, with its stderr.
fn setup_outcome(program: &str, args: &[&str], out: &std::process::Output) -> anyhow::Result<()> {
    if !out.status.success() {
        bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

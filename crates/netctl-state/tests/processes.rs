//! Several processes against one state directory, as concurrent and killed netctl runs are.
//!
//! The tests re-execute this test binary in "child mode" (selected by an environment variable,
//! running the same test function by exact name). A child does what a netctl operation does for
//! each allocation: take the operation lock, open the store, record a container and attach it in
//! one write transaction, close, unlock, and only then print the lease on stdout. So every
//! printed lease is committed, and at most one committed lease per child is unprinted (the child
//! may die between commit and print).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{container, network};
use netctl_state::{AttachRequest, OperationLock, StateRead, Store};
use rand::RngExt;

const CHILD_ENV: &str = "NETCTL_STATE_TEST_CHILD";
/// Marks a lease line in a child's stdout (which the test harness also writes to).
const MARK: &str = "@@lease ";
const NETWORK: &str = "net";
const LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// Marks the lock error a probing child reports.
const ERROR_MARK: &str = "@@error ";

/// What a child is asked to do, once `<dir>/go` exists.
struct ChildJob {
    kind: JobKind,
    dir: PathBuf,
    prefix: String,
    count: u64,
}

#[derive(Clone, Copy)]
enum JobKind {
    /// Allocate `count` addresses (0: until killed) for containers named `<prefix>-<i>`, one
    /// operation (lock, open, transaction, close, unlock) each.
    Allocate,
    /// The same in one operation: one lock and open, one transaction per address.
    Stream,
    /// Try to take the lock for 200ms and report the error.
    ProbeLock,
}

impl ChildJob {
    fn encode(&self) -> String {
        let kind = match self.kind {
            JobKind::Allocate => "allocate",
            JobKind::Stream => "stream",
            JobKind::ProbeLock => "probe-lock",
        };
        format!(
            "{kind}\n{}\n{}\n{}",
            self.count,
            self.prefix,
            self.dir.display()
        )
    }

    fn from_env() -> Option<ChildJob> {
        let text = std::env::var(CHILD_ENV).ok()?;
        let mut parts = text.splitn(4, '\n');
        let kind = match parts.next()? {
            "allocate" => JobKind::Allocate,
            "stream" => JobKind::Stream,
            "probe-lock" => JobKind::ProbeLock,
            _ => return None,
        };
        Some(ChildJob {
            kind,
            count: parts.next()?.parse().ok()?,
            prefix: parts.next()?.to_owned(),
            dir: parts.next()?.into(),
        })
    }

    fn run(&self) {
        while !self.dir.join("go").exists() {
            std::thread::sleep(Duration::from_millis(1));
        }
        match self.kind {
            JobKind::Allocate => self.allocate(),
            JobKind::Stream => self.stream(),
            JobKind::ProbeLock => {
                let err = OperationLock::acquire(&self.dir, Duration::from_millis(200))
                    .expect_err("the parent holds the lock");
                println!("{ERROR_MARK}{err}");
            }
        }
    }

    /// One operation per allocation: lock, open, one write transaction, close, unlock, print.
    fn allocate(&self) {
        let mut out = std::io::stdout().lock();
        for i in (0..).take_while(|i| self.count == 0 || *i < self.count) {
            let lock = OperationLock::acquire(&self.dir, LOCK_TIMEOUT).unwrap();
            let store = Store::open(&self.dir).unwrap();
            let line = self.allocate_one(&store, i);
            drop(store);
            drop(lock);
            // Printed only now: the transaction is committed.
            writeln!(out, "{line}").unwrap();
            out.flush().unwrap();
        }
    }

    /// One lock and open for the whole stream: nearly all the time goes to write transactions,
    /// so a kill nearly always lands in one.
    fn stream(&self) {
        let mut out = std::io::stdout().lock();
        let _lock = OperationLock::acquire(&self.dir, LOCK_TIMEOUT).unwrap();
        let store = Store::open(&self.dir).unwrap();
        for i in (0..).take_while(|i| self.count == 0 || *i < self.count) {
            let line = self.allocate_one(&store, i);
            writeln!(out, "{line}").unwrap();
            out.flush().unwrap();
        }
    }

    /// Records container `<prefix>-<i>` and attaches it in one write transaction; returns the
    /// line to print once that is committed.
    fn allocate_one(&self, store: &Store, i: u64) -> String {
        let name = format!("{}-{i}", self.prefix);
        let attachment = store
            .write(|tx| {
                tx.put_container(&container(&name, i))?;
                tx.attach(&AttachRequest {
                    container: name.clone(),
                    network: NETWORK.to_owned(),
                    static_ips: vec![],
                    mac: None,
                    aliases: vec![],
                    interface: None,
                    metric: None,
                })
            })
            .unwrap();
        format!("{MARK}{name} {}", attachment.addresses[0].addr())
    }
}

/// Runs the child job if this process is a child; the caller then returns.
fn child_mode() -> bool {
    match ChildJob::from_env() {
        Some(job) => {
            job.run();
            true
        }
        None => false,
    }
}

fn spawn_child(test_name: &str, job: &ChildJob) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, job.encode())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn lines_of(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The `container → address` pairs among a child's output lines.
fn leases_in(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|line| {
            let rest = &line[line.find(MARK)? + MARK.len()..];
            let (name, addr) = rest.split_once(' ')?;
            Some((name.to_owned(), addr.trim().to_owned()))
        })
        .collect()
}

/// A state directory whose store has network `net` with `cidr`.
fn prepare(dir: &Path, cidr: &str) {
    let store = Store::open(dir).unwrap();
    store
        .write(|tx| tx.put_network(&network(NETWORK, &[cidr])))
        .unwrap();
}

/// What the store holds, as `container → address`, after checking it is consistent.
fn recorded_leases(dir: &Path) -> BTreeMap<String, String> {
    let _lock = OperationLock::acquire(dir, LOCK_TIMEOUT).unwrap();
    let store = Store::open(dir).unwrap();
    let r = store.read().unwrap();
    let problems = r.consistency_problems().unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
    let mut out = BTreeMap::new();
    for lease in r.leases(NETWORK).unwrap() {
        let previous = out.insert(lease.container.clone(), lease.address.to_string());
        assert_eq!(
            previous, None,
            "container {} holds two leases",
            lease.container
        );
        // every lease belongs to a complete record: the container and its attachment
        assert!(r.container(&lease.container).unwrap().is_some());
        let attachment = r.attachment(&lease.container, NETWORK).unwrap().unwrap();
        assert_eq!(attachment.addresses[0].addr(), lease.address);
    }
    out
}

#[test]
fn eight_processes_allocate_distinct_addresses() {
    if child_mode() {
        return;
    }
    const PROCESSES: u64 = 8;
    const EACH: u64 = 25;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    prepare(&dir, "10.89.0.0/24");

    let children: Vec<_> = (0..PROCESSES)
        .map(|k| {
            spawn_child(
                "eight_processes_allocate_distinct_addresses",
                &ChildJob {
                    kind: JobKind::Allocate,
                    dir: dir.clone(),
                    prefix: format!("p{k}"),
                    count: EACH,
                },
            )
        })
        .collect();
    // All start together once every one is running.
    std::fs::write(dir.join("go"), b"").unwrap();

    let mut reported = Vec::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "a child failed: {:?}",
            output.status
        );
        let lines = lines_of(&output.stdout);
        let leases = leases_in(&lines);
        assert_eq!(leases.len() as u64, EACH, "{lines:#?}");
        reported.extend(leases);
    }

    let addresses: BTreeSet<&str> = reported.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(
        addresses.len() as u64,
        PROCESSES * EACH,
        "an address was handed out twice"
    );
    assert!(!addresses.contains("10.89.0.1") && !addresses.contains("10.89.0.0"));
    let reported: BTreeMap<String, String> = reported.into_iter().collect();
    assert_eq!(recorded_leases(&dir), reported);
}

#[test]
fn sigkill_mid_allocation_leaves_a_store_that_opens() {
    if child_mode() {
        return;
    }
    const ROUNDS: u32 = 20;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    prepare(&dir, "10.89.0.0/16");
    std::fs::write(dir.join("go"), b"").unwrap();
    let mut rng = rand::rng();
    // container → address, as printed by every child so far
    let mut printed: BTreeMap<String, String> = BTreeMap::new();
    // per round, the container a killed child may have committed without printing
    let mut in_flight: Vec<String> = Vec::new();

    for round in 0..ROUNDS {
        let prefix = format!("k{round}");
        let mut child = spawn_child(
            "sigkill_mid_allocation_leaves_a_store_that_opens",
            &ChildJob {
                // Alternate: kills land mostly in write transactions when streaming, and also
                // in opening and closing the store when each allocation is an operation.
                kind: if round % 2 == 0 {
                    JobKind::Stream
                } else {
                    JobKind::Allocate
                },
                dir: dir.clone(),
                prefix: prefix.clone(),
                count: 0,
            },
        );
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        let delay = Duration::from_millis(rng.random_range(20..250));
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the child ended by itself"
        );
        let lines = reader.join().unwrap();
        let leases = leases_in(&lines);
        // The child allocates k<round>-0, -1, ... in order; the one after the last printed is
        // the one that may have been in flight.
        for (i, (name, _)) in leases.iter().enumerate() {
            assert_eq!(name, &format!("{prefix}-{i}"), "round {round}");
        }
        in_flight.push(format!("{prefix}-{}", leases.len()));
        printed.extend(leases);

        // The store opens (the lock is free: the kernel dropped it with the process).
        let started = Instant::now();
        let recorded = recorded_leases(&dir);
        let reopened = started.elapsed();
        // Committed but never printed: the child died between commit and print. Each such
        // lease must be its round's in-flight allocation, so there is at most one per kill.
        let mut unprinted = Vec::new();
        for (name, addr) in &recorded {
            if let Some(p) = printed.get(name) {
                assert_eq!(p, addr, "round {round}: {name}");
            } else {
                assert!(
                    in_flight.contains(name),
                    "round {round}: lease of {name} belongs to no allocation"
                );
                unprinted.push(name.clone());
            }
        }
        let this_round = in_flight.last().filter(|n| unprinted.contains(n));
        eprintln!(
            "round {round}: killed after {delay:?}; {} leases printed in total; committed but \
             unprinted this round: {this_round:?}; store reopened in {reopened:?}",
            printed.len(),
        );
        for name in printed.keys() {
            assert!(
                recorded.contains_key(name),
                "round {round}: printed {name} is lost"
            );
        }
    }
    // the killed children did allocate: the test killed real work
    assert!(!printed.is_empty());
}

#[test]
fn a_waiting_process_proceeds_once_the_lock_is_released() {
    if child_mode() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    prepare(&dir, "10.89.0.0/24");
    std::fs::write(dir.join("go"), b"").unwrap();
    let held = OperationLock::acquire(&dir, Duration::ZERO).unwrap();
    let child = spawn_child(
        "a_waiting_process_proceeds_once_the_lock_is_released",
        &ChildJob {
            kind: JobKind::Allocate,
            dir: dir.clone(),
            prefix: "w".into(),
            count: 1,
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    {
        // the child cannot have recorded anything while the lock is held here
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.read().unwrap().leases(NETWORK).unwrap(), vec![]);
    }
    drop(held);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        leases_in(&lines_of(&output.stdout)),
        vec![("w-0".to_owned(), "10.89.0.2".to_owned())]
    );
}

#[test]
fn lock_timeout_names_the_holding_process() {
    if child_mode() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("go"), b"").unwrap();
    let _held = OperationLock::acquire(&dir, Duration::ZERO).unwrap();
    let child = spawn_child(
        "lock_timeout_names_the_holding_process",
        &ChildJob {
            kind: JobKind::ProbeLock,
            dir: dir.clone(),
            prefix: String::new(),
            count: 0,
        },
    );
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let lines = lines_of(&output.stdout);
    let message = lines
        .iter()
        .find_map(|l| Some(l[l.find(ERROR_MARK)? + ERROR_MARK.len()..].to_owned()))
        .expect("the child reported the lock error");
    // this process holds the lock: its pid and command line (the test binary and its
    // arguments) are named
    let program = std::env::current_exe().unwrap();
    let program = program.file_name().unwrap().to_string_lossy();
    let expected_start = format!("state is locked by pid {} ({program}", std::process::id());
    assert!(message.starts_with(&expected_start), "{message}");
    assert!(
        message.ends_with(&format!(
            "; gave up after 0.2s waiting for {}",
            dir.join("netctl.lock").display()
        )),
        "{message}"
    );
}

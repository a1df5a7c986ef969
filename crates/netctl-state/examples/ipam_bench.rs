//! IPAM and store benchmark: `cargo run --release -p netctl-state --example ipam_bench`
//! (`cargo xtask bench ipam` runs it). Options: `--leases N` (default 10000), `--allocations N`
//! (default 500), `--opens N` (default 20).
//!
//! It fills a /16 network with N leases, then measures further allocations, each in its own
//! durable write transaction as netctl makes one per operation; the same with the whole
//! operation around it (lock, open, allocate, commit, close, unlock); the worst case, where
//! every allocation wraps and scans past all N leases; the cost of opening the store; and the
//! cost of the first open after a process was killed with the store open.

use std::collections::BTreeMap;
use std::error::Error;
use std::io::BufRead as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use netctl_state::{
    AllocRequest, Isolate, LeaseRange, NetworkDriver, NetworkRecord, OperationLock, StateError,
    StateRead, Store, SubnetRecord, generate_id,
};

/// Set in the child that opens the store and waits to be killed.
const CRASH_CHILD_ENV: &str = "NETCTL_IPAM_BENCH_CRASH_CHILD";

struct Options {
    leases: u64,
    allocations: u64,
    opens: u64,
}

fn options() -> Result<Options, Box<dyn Error>> {
    let mut o = Options {
        leases: 10_000,
        allocations: 500,
        opens: 20,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value: u64 = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .parse()?;
        match flag.as_str() {
            "--leases" => o.leases = value,
            "--allocations" => o.allocations = value.max(1),
            "--opens" => o.opens = value.max(1),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(o)
}

fn network(name: &str, cidr: &str, lease_range: Option<(IpAddr, IpAddr)>) -> NetworkRecord {
    let subnet: ipnet::IpNet = cidr.parse().expect("valid subnet");
    let gateway = subnet.hosts().next();
    NetworkRecord {
        name: name.to_owned(),
        id: generate_id(&mut rand::rng()),
        driver: NetworkDriver::Bridge,
        network_interface: format!("nc-{name}"),
        subnets: vec![SubnetRecord {
            subnet,
            gateway,
            lease_range: lease_range.map(|(start, end)| LeaseRange {
                start: Some(start),
                end: Some(end),
            }),
        }],
        ipv6: false,
        internal: false,
        dns_enabled: false,
        dns_servers: Vec::new(),
        mtu: None,
        isolate: Isolate::Off,
        labels: BTreeMap::new(),
        options: BTreeMap::new(),
        routes: Vec::new(),
        created: SystemTime::now(),
        project: None,
    }
}

/// Allocates for containers `<prefix>-<from..to>` on `net`, 1000 per write transaction.
fn fill(store: &Store, net: &str, prefix: &str, from: u64, to: u64) -> Result<(), StateError> {
    let mut i = from;
    while i < to {
        let end = (i + 1000).min(to);
        store.write(|tx| {
            for n in i..end {
                tx.allocate(net, &format!("{prefix}-{n}"), &AllocRequest::default())?;
            }
            Ok::<_, StateError>(())
        })?;
        i = end;
    }
    Ok(())
}

fn rate(count: u64, elapsed: Duration) -> String {
    // counts and sizes here are far below 2^52: exact as f64
    #[allow(clippy::cast_precision_loss)]
    let count = count as f64;
    let per_second = count / elapsed.as_secs_f64();
    let each_ms = elapsed.as_secs_f64() * 1000.0 / count;
    format!("{per_second:.0} allocations/s ({each_ms:.3} ms each)")
}

/// The child of the recovery measurement: opens the store, commits, and waits to be killed.
fn crash_child(dir: &Path) -> Result<(), Box<dyn Error>> {
    let store = Store::open(dir)?;
    store.write(|tx| tx.allocate("bench", "crash", &AllocRequest::default()))?;
    println!("ready");
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    if let Some(dir) = std::env::var_os(CRASH_CHILD_ENV) {
        return crash_child(Path::new(&dir));
    }
    let o = options()?;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let store = Store::open(dir)?;
    store.write(|tx| tx.put_network(&network("bench", "10.89.0.0/16", None)))?;

    println!(
        "ipam bench: network bench 10.89.0.0/16, {} leases, state in {}",
        o.leases,
        dir.display()
    );
    let started = Instant::now();
    fill(&store, "bench", "fill", 0, o.leases)?;
    println!(
        "fill: {} leases in {:.2?}, 1000 allocations per write transaction",
        o.leases,
        started.elapsed()
    );

    let started = Instant::now();
    for n in 0..o.allocations {
        store.write(|tx| tx.allocate("bench", &format!("alloc-{n}"), &AllocRequest::default()))?;
    }
    println!(
        "allocate: {} allocations, one durable write transaction each: {}",
        o.allocations,
        rate(o.allocations, started.elapsed())
    );
    drop(store);

    let started = Instant::now();
    for n in 0..o.allocations {
        let _lock = OperationLock::acquire(dir, Duration::from_secs(10))?;
        let store = Store::open(dir)?;
        store.write(|tx| tx.allocate("bench", &format!("op-{n}"), &AllocRequest::default()))?;
    }
    println!(
        "operation: {} times lock + open + allocate + commit + close: {}",
        o.allocations,
        rate(o.allocations, started.elapsed())
    );

    // Worst case: a lease range exactly as large as the leases plus the measured allocations,
    // filled, with its last addresses released and the pointer at the end of the range. Every
    // allocation then wraps to the start and walks past all the leases to find a free address.
    let store = Store::open(dir)?;
    let size = o.leases + o.allocations;
    let first = u32::from(Ipv4Addr::new(10, 100, 0, 2));
    let last = first + u32::try_from(size)? - 1;
    let range = (
        IpAddr::from(Ipv4Addr::from(first)),
        IpAddr::from(Ipv4Addr::from(last)),
    );
    store.write(|tx| tx.put_network(&network("wrap", "10.100.0.0/14", Some(range))))?;
    fill(&store, "wrap", "w", 0, size)?;
    store.write(|tx| {
        for n in o.leases..size {
            tx.release("wrap", &format!("w-{n}"))?;
        }
        Ok::<_, StateError>(())
    })?;
    let started = Instant::now();
    for n in 0..o.allocations {
        store.write(|tx| tx.allocate("wrap", &format!("again-{n}"), &AllocRequest::default()))?;
    }
    println!(
        "allocate after wrap-around, scanning past {} leases: {}",
        o.leases,
        rate(o.allocations, started.elapsed())
    );
    let leases = store.read()?.all_leases()?.len();
    drop(store);

    #[allow(clippy::cast_precision_loss)] // a file size far below 2^52
    let mib = std::fs::metadata(dir.join(netctl_state::STORE_FILE))?.len() as f64 / 1_048_576.0;
    let mut times = Vec::new();
    for _ in 0..o.opens {
        let started = Instant::now();
        let store = Store::open(dir)?;
        times.push(started.elapsed());
        drop(store);
    }
    times.sort();
    println!(
        "open: store of {:.1} MiB with {leases} leases: median {:.2?}, min {:.2?}, max {:.2?} over {} opens",
        mib,
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        o.opens
    );

    // A process killed with the store open leaves it marked for recovery; the next open repairs.
    let mut child = Command::new(std::env::current_exe()?)
        .env(CRASH_CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut ready = String::new();
    std::io::BufReader::new(child.stdout.take().ok_or("no child stdout")?).read_line(&mut ready)?;
    if ready.trim() != "ready" {
        return Err(format!("the crash child did not get ready: {:?}", child.wait()?).into());
    }
    child.kill()?;
    child.wait()?;
    let started = Instant::now();
    drop(Store::open(dir)?);
    println!(
        "open after a process was killed with the store open (recovery): {:.2?}",
        started.elapsed()
    );
    Ok(())
}

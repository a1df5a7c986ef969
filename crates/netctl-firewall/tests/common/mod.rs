//! Test helpers shared by the privileged test binaries: an `nft -j -f -` runner and a
//! readable listing of the table. Only ever used inside a sandbox's private namespace.

#![allow(dead_code)] // each test binary uses its own part

use std::fmt;
use std::io::Write as _;
use std::process::{Command, Stdio};

use netctl_firewall::NftRunner;

/// Runs `nft -j -f -` with the batch on stdin.
#[derive(Debug, Clone, Copy, Default)]
pub struct NftCli;

/// `nft` failed; carries what it printed.
#[derive(Debug)]
pub struct NftFailed {
    pub stderr: String,
}

impl fmt::Display for NftFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nft -j -f - failed: {}", self.stderr.trim())
    }
}

impl std::error::Error for NftFailed {}

impl NftRunner for NftCli {
    type Error = NftFailed;

    fn apply(&self, json: &str) -> Result<(), NftFailed> {
        let mut child = Command::new("nft")
            .args(["-j", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nft");
        child
            .stdin
            .take()
            .expect("nft stdin")
            .write_all(json.as_bytes())
            .expect("write batch to nft");
        let out = child.wait_with_output().expect("wait for nft");
        if out.status.success() {
            Ok(())
        } else {
            Err(NftFailed {
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }
}

/// `nft list table inet netctl`, without handles, as users read it.
pub fn list_table() -> String {
    let out = Command::new("nft")
        .args(["list", "table", "inet", "netctl"])
        .output()
        .expect("run nft list");
    assert!(
        out.status.success(),
        "nft list table failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let text: Vec<&str> = text
        .lines()
        .map(|line| line.split(" # handle ").next().unwrap_or(line).trim_end())
        .collect();
    sort_elements(&text.join("\n"))
}

/// Hash sets list their elements in an order that changes from run to run (the kernel seeds
/// the hash randomly), so each `elements = { ... }` block is rewritten sorted, one per line.
fn sort_elements(text: &str) -> String {
    const OPEN: &str = "elements = { ";
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        let (before, after) = rest.split_at(start + OPEN.len());
        let end = after.find(" }").expect("elements block ends");
        let indent: String = before[before.rfind('\n').map_or(0, |i| i + 1)..]
            .chars()
            .take_while(|c| c.is_whitespace())
            .collect();
        let mut elements: Vec<&str> = after[..end].split(',').map(str::trim).collect();
        elements.sort_unstable();
        out.push_str(before);
        out.push_str(&elements.join(&format!(",\n{indent}\t     ")));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The elements of one set or map, as nft's JSON lists them.
pub fn element_count(map: &str) -> usize {
    let out = Command::new("nft")
        .args(["-j", "list", "map", "inet", "netctl", map])
        .output()
        .expect("run nft list map");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("nft JSON");
    json["nftables"]
        .as_array()
        .expect("nftables array")
        .iter()
        .find_map(|obj| obj.get("map"))
        .and_then(|map| map.get("elem"))
        .and_then(serde_json::Value::as_array)
        .map_or(0, Vec::len)
}

/// Whether netctl's table exists at all.
pub fn table_exists() -> bool {
    Command::new("nft")
        .args(["list", "table", "inet", "netctl"])
        .output()
        .expect("run nft list")
        .status
        .success()
}

/// A TCP or UDP listener in `ns` (`None`: the sandbox itself) that answers each connection or
/// datagram with the peer address it saw, like `Sandbox::listen`.
///
/// It reads the client's request line before answering. Answering first (as the testkit's
/// listener does) races: when the reply-writing child has already exited, socat fails writing
/// the request to it (EPIPE) and drops the connection, sometimes before the reply went out, so
/// about one probe in six came back empty whatever the firewall did.
pub fn listen(
    sb: &netctl_testkit::Sandbox,
    ns: Option<&str>,
    proto: netctl_testkit::Proto,
    bind: &str,
    port: u16,
) -> netctl_testkit::Background {
    let v6 = bind.contains(':');
    let (fam, addr, extra) = if v6 {
        ("6", format!("[{bind}]"), ",ipv6only=0")
    } else {
        ("4", bind.to_owned(), "")
    };
    let listen = match proto {
        netctl_testkit::Proto::Tcp => {
            format!("TCP{fam}-LISTEN:{port},bind={addr},reuseaddr,fork{extra}")
        }
        netctl_testkit::Proto::Udp => format!("UDP{fam}-RECVFROM:{port},bind={addr},fork{extra}"),
    };
    let bg = sb.spawn(
        ns,
        &["socat", &listen, "SYSTEM:read -r _; echo $SOCAT_PEERADDR"],
    );
    let filter = format!(":{port}");
    let ss = ["ss", "-lnH", "sport", "=", filter.as_str()];
    let ready = sb.wait_for(std::time::Duration::from_secs(5), || {
        let out = match ns {
            Some(ns) => sb.ns_output(ns, &ss),
            None => sb.output(&ss),
        };
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    });
    assert!(ready, "listener {proto:?} {bind}:{port} did not come up");
    bg
}

/// JSON batches through `nft -j -f -`, element batches straight over netlink (what netctl
/// itself does, through its kernel seam).
#[derive(Debug, Default)]
pub struct Netlink(pub netctl_sys::LinuxSys);

impl NftRunner for Netlink {
    type Error = netctl_sys::SysError;

    fn apply(&self, json: &str) -> Result<(), Self::Error> {
        use netctl_sys::Nft as _;
        self.0.nft_apply(json)
    }

    fn apply_elements(&self, batch: &netctl_types::nft::ElementBatch) -> Result<(), Self::Error> {
        use netctl_sys::Nft as _;
        self.0.nft_apply_elements(batch)
    }
}

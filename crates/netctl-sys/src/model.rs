//! Plain values passed through the sys traits: links, addresses, routes, process specs.
//!
//! They hold only what netctl reads or writes, in netctl's vocabulary; netlink message types
//! never leak out of this crate.

use std::ffi::OsString;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use netctl_types::MacAddr;

use crate::SysError;

/// Longest interface name the kernel accepts (`IFNAMSIZ - 1`).
pub const MAX_IFNAME_LEN: usize = 15;

/// The kernel's main routing table (`RT_TABLE_MAIN`).
pub const MAIN_TABLE: u32 = 254;

/// The metric the kernel gives an IPv6 route added without one (`IP6_RT_PRIO_USER`).
pub const IPV6_DEFAULT_METRIC: u32 = 1024;

/// What kind of device a link is (its rtnetlink "kind").
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinkKind {
    Bridge,
    Veth,
    /// A device without an rtnetlink kind: loopback or a physical NIC.
    Device,
    /// Any other kind, as the kernel names it (`dummy`, `vlan`, `macvlan`, ...).
    Other(String),
}

impl fmt::Display for LinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bridge => f.write_str("bridge"),
            Self::Veth => f.write_str("veth"),
            Self::Device => f.write_str("device"),
            Self::Other(kind) => f.write_str(kind),
        }
    }
}

/// The other end of a veth pair, as seen from one end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VethPeer {
    /// The peer's ifindex, in the peer's own namespace.
    pub index: u32,
    /// Whether the peer lives in a different namespace than this end.
    pub other_namespace: bool,
}

/// A network interface as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// ifindex, unique within its namespace.
    pub index: u32,
    pub name: String,
    pub kind: LinkKind,
    pub mac: Option<MacAddr>,
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// ifindex of the bridge this link is a port of.
    pub master: Option<u32>,
    /// `IFLA_IFALIAS`; netctl marks the links it owns with it.
    pub alias: Option<String>,
    /// For a veth: where its other end is.
    pub peer: Option<VethPeer>,
}

/// A bridge to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    pub name: String,
    /// `None`: the kernel default (1500).
    pub mtu: Option<u32>,
    /// `None`: the kernel picks one. A set MAC also pins it, so the bridge does not take over
    /// the lowest port's address later.
    pub mac: Option<MacAddr>,
    pub alias: Option<String>,
}

/// A veth pair to create: `name` in the namespace the call targets, `peer_name` directly in
/// `peer_ns` (the peer never appears in the first namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethSpec {
    pub name: String,
    /// MTU of both ends; `None`: the kernel default (1500).
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    /// Alias of the `name` end.
    pub alias: Option<String>,
    pub peer_name: String,
    pub peer_ns: crate::NsRef,
    pub peer_mac: Option<MacAddr>,
}

/// A macvlan to create on `parent` (a link of the namespace the call targets), placed directly
/// in `link_ns` under `name`: no temporary name, no move, no rename.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacvlanSpec {
    pub name: String,
    pub parent: String,
    pub mode: netctl_types::MacvlanMode,
    /// `None`: the parent's.
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    /// Only for a link made in the namespace the call targets (the kernel ignores an alias
    /// given at creation, so it is set afterwards, where the socket is).
    pub alias: Option<String>,
    pub link_ns: crate::NsRef,
}

/// A per-interface IPv4 setting (a `net.ipv4.conf.IFACE.*` sysctl) that netlink can set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Conf {
    RpFilter,
    ArpNotify,
    RouteLocalnet,
}

impl Ipv4Conf {
    /// The sysctl's name under `net.ipv4.conf.IFACE`.
    pub fn sysctl_name(self) -> &'static str {
        match self {
            Self::RpFilter => "rp_filter",
            Self::ArpNotify => "arp_notify",
            Self::RouteLocalnet => "route_localnet",
        }
    }
}

/// Changes to an existing link; `None` fields are left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkChange {
    pub up: Option<bool>,
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    /// `Some(Some(bridge))`: make the link a port of `bridge`; `Some(None)`: release it.
    pub master: Option<Option<String>>,
    /// `Some("")` removes the alias.
    pub alias: Option<String>,
    /// Rename the link. Older kernels refuse to rename a link that is up (`EBUSY`), and so
    /// does the fake, so plans set a link down before renaming it.
    pub new_name: Option<String>,
    /// Bridge port hairpin mode (the link must be a bridge port): lets a container reach
    /// itself through the host, e.g. its own published port.
    pub hairpin: Option<bool>,
}

impl LinkChange {
    /// A change that sets the link up.
    pub fn up() -> Self {
        Self {
            up: Some(true),
            ..Self::default()
        }
    }

    /// A change that sets the link down.
    pub fn down() -> Self {
        Self {
            up: Some(false),
            ..Self::default()
        }
    }

    /// Whether the change changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Display for LinkChange {
    /// `up=true mtu=1500 mac=.. master=br0 alias=".." name=..`, only the fields that are set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(up) = self.up {
            parts.push(format!("up={up}"));
        }
        if let Some(mtu) = self.mtu {
            parts.push(format!("mtu={mtu}"));
        }
        if let Some(mac) = self.mac {
            parts.push(format!("mac={mac}"));
        }
        match &self.master {
            Some(Some(master)) => parts.push(format!("master={master}")),
            Some(None) => parts.push("nomaster".to_owned()),
            None => {}
        }
        if let Some(alias) = &self.alias {
            parts.push(format!("alias={alias:?}"));
        }
        if let Some(name) = &self.new_name {
            parts.push(format!("name={name}"));
        }
        if let Some(hairpin) = self.hairpin {
            parts.push(format!("hairpin={hairpin}"));
        }
        f.write_str(&parts.join(" "))
    }
}

/// An address on a link.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Addr {
    pub link_index: u32,
    pub link_name: String,
    /// The address with its prefix length (`10.89.0.1/24`).
    pub net: IpNet,
}

/// Who installed a route (`rtm_protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum RouteProto {
    /// Installed by the kernel itself (connected routes of addresses).
    Kernel,
    /// `ip route add`'s default.
    Boot,
    /// Installed by an administrator or a tool; what netctl uses.
    #[default]
    Static,
    /// Learned from router advertisements.
    Ra,
    Dhcp,
    Other(u8),
}

impl RouteProto {
    /// The kernel's `RTPROT_*` number.
    pub fn number(self) -> u8 {
        match self {
            Self::Kernel => 2,
            Self::Boot => 3,
            Self::Static => 4,
            Self::Ra => 9,
            Self::Dhcp => 16,
            Self::Other(n) => n,
        }
    }

    /// From the kernel's `RTPROT_*` number.
    pub fn from_number(n: u8) -> Self {
        match n {
            2 => Self::Kernel,
            3 => Self::Boot,
            4 => Self::Static,
            9 => Self::Ra,
            16 => Self::Dhcp,
            n => Self::Other(n),
        }
    }
}

impl fmt::Display for RouteProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Kernel => f.write_str("kernel"),
            Self::Boot => f.write_str("boot"),
            Self::Static => f.write_str("static"),
            Self::Ra => f.write_str("ra"),
            Self::Dhcp => f.write_str("dhcp"),
            Self::Other(n) => write!(f, "{n}"),
        }
    }
}

/// What a route does with a packet: forward it (unicast), or drop it silently (blackhole),
/// with "unreachable" or with "prohibited" (ICMP back to the sender).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKind {
    #[default]
    Unicast,
    Blackhole,
    Unreachable,
    Prohibit,
}

impl RouteKind {
    /// `ip route`'s word for it (empty for unicast).
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Unicast => "",
            RouteKind::Blackhole => "blackhole",
            RouteKind::Unreachable => "unreachable",
            RouteKind::Prohibit => "prohibit",
        }
    }
}

/// A route: unicast, or one of the kinds that go nowhere ([`RouteKind`]).
///
/// As input, `metric: 0` means "no metric": IPv4 keeps 0, IPv6 gets 1024
/// ([`IPV6_DEFAULT_METRIC`]) like the kernel does; a deletion with metric 0 matches any metric.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// Destination; `0.0.0.0/0` or `::/0` is the default route.
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    /// Output interface by name. Required when there is no gateway.
    pub dev: Option<String>,
    pub metric: u32,
    /// Routing table id; [`MAIN_TABLE`] normally.
    pub table: u32,
    pub proto: RouteProto,
    /// Unicast unless set; the other kinds have no gateway and no device.
    pub kind: RouteKind,
}

impl Route {
    /// A route to `dst` in the main table with protocol `static` and no metric.
    pub fn new(dst: IpNet) -> Self {
        Self {
            dst,
            gateway: None,
            dev: None,
            metric: 0,
            table: MAIN_TABLE,
            proto: RouteProto::Static,
            kind: RouteKind::Unicast,
        }
    }

    /// A route of `kind` to `dst` (blackhole, unreachable, prohibit).
    pub fn of_kind(kind: RouteKind, dst: IpNet) -> Self {
        Self {
            kind,
            ..Self::new(dst)
        }
    }

    /// The default route of `gateway`'s family via `gateway`.
    pub fn default_via(gateway: IpAddr) -> Self {
        let dst = match gateway {
            IpAddr::V4(_) => IpNet::V4(ipnet::Ipv4Net::default()),
            IpAddr::V6(_) => IpNet::V6(ipnet::Ipv6Net::default()),
        };
        Self {
            gateway: Some(gateway),
            ..Self::new(dst)
        }
    }

    /// Sets the output interface.
    #[must_use]
    pub fn dev(mut self, dev: impl Into<String>) -> Self {
        self.dev = Some(dev.into());
        self
    }

    /// Sets the metric.
    #[must_use]
    pub fn metric(mut self, metric: u32) -> Self {
        self.metric = metric;
        self
    }

    /// Whether this is a default route.
    pub fn is_default(&self) -> bool {
        self.dst.prefix_len() == 0
    }

    /// The metric the kernel stores for this route (IPv6 turns 0 into 1024).
    pub fn effective_metric(&self) -> u32 {
        match (self.dst, self.metric) {
            (IpNet::V6(_), 0) => IPV6_DEFAULT_METRIC,
            (_, metric) => metric,
        }
    }
}

impl fmt::Display for Route {
    /// In `ip route` style: `default via 10.89.0.1 dev eth0 metric 100`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind != RouteKind::Unicast {
            write!(f, "{} ", self.kind.as_str())?;
        }
        if self.is_default() {
            f.write_str("default")?;
            if self.dst.addr().is_ipv6() {
                f.write_str(" (ipv6)")?;
            }
        } else {
            write!(f, "{}", self.dst)?;
        }
        if let Some(gateway) = self.gateway {
            write!(f, " via {gateway}")?;
        }
        if let Some(dev) = &self.dev {
            write!(f, " dev {dev}")?;
        }
        if self.metric != 0 {
            write!(f, " metric {}", self.metric)?;
        }
        if self.table != MAIN_TABLE {
            write!(f, " table {}", self.table)?;
        }
        if self.proto != RouteProto::Static {
            write!(f, " proto {}", self.proto)?;
        }
        Ok(())
    }
}

/// An nftables address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NftFamily {
    Ip,
    Ip6,
    Inet,
    Arp,
    Bridge,
    Netdev,
}

impl NftFamily {
    /// The name `nft` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::Ip6 => "ip6",
            Self::Inet => "inet",
            Self::Arp => "arp",
            Self::Bridge => "bridge",
            Self::Netdev => "netdev",
        }
    }

    /// Parses the name `nft` uses.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "ip" => Self::Ip,
            "ip6" => Self::Ip6,
            "inet" => Self::Inet,
            "arp" => Self::Arp,
            "bridge" => Self::Bridge,
            "netdev" => Self::Netdev,
            _ => return None,
        })
    }
}

impl fmt::Display for NftFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a spawned process's standard stream goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StdioSpec {
    /// `/dev/null`.
    #[default]
    Null,
    /// Shares netctl's own stream.
    Inherit,
    /// A file: read for stdin; created if missing and appended to for stdout/stderr.
    File(PathBuf),
}

/// How a spawned program runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SpawnMode {
    /// The program stays in the foreground; `spawn` returns once it has been started.
    #[default]
    Foreground,
    /// The program forks a daemon, writes the daemon's pid to `pid_file` and exits (pasta,
    /// aardvark-dns). `spawn` waits up to `timeout` for that launcher to exit successfully and
    /// returns the daemon's pid. The launcher's stdout and stderr are captured (the spec's
    /// stdout/stderr are ignored) so a failure carries its message; the daemon is expected to
    /// let go of them as daemons do (one that keeps writing there gets `EPIPE`).
    Daemon {
        pid_file: PathBuf,
        timeout: Duration,
    },
    /// The program stays in the foreground and says it is ready by writing a byte to its
    /// standard input, which is the write end of a pipe (slirp4netns `--ready-fd=0`). `spawn`
    /// returns once that byte arrives. If the program closes the pipe (exits) first, or
    /// `timeout` passes, it is killed and reaped and `spawn` fails, so a failed start leaves no
    /// process behind. The spec's stdin is ignored; stdout and stderr go where the spec says (a
    /// log file, typically, which the caller reads to explain a failure).
    ///
    /// Standard input rather than some higher descriptor: the standard library places the three
    /// standard streams itself, while moving any other descriptor into place needs `pre_exec`
    /// (unsafe code, and it can land on the descriptor the standard library uses to report a
    /// failed `exec`).
    ReadyPipe { timeout: Duration },
}

/// How a program run to completion by [`Processes::run`](crate::Processes::run) ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunOutput {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its exit status in words (`exit status: 1`, `signal: 9 (SIGKILL)`).
    pub status: String,
    /// Everything it wrote to standard output (lossily decoded as UTF-8).
    pub stdout: String,
    /// Everything it wrote to standard error (lossily decoded as UTF-8).
    pub stderr: String,
}

/// A program to start. It runs with exactly `argv`, never through a shell, in its own process
/// group so a Ctrl-C aimed at netctl does not reach it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpawnSpec {
    /// Program and arguments; `argv[0]` is looked up in `PATH` unless it contains a `/`.
    pub argv: Vec<OsString>,
    /// Variables added to (or overriding) netctl's environment.
    pub env: Vec<(OsString, OsString)>,
    pub stdin: StdioSpec,
    pub stdout: StdioSpec,
    pub stderr: StdioSpec,
    pub mode: SpawnMode,
}

impl SpawnSpec {
    /// A foreground program with all streams on `/dev/null`.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// The program name for messages.
    pub fn program(&self) -> String {
        self.argv
            .first()
            .map_or_else(String::new, |p| p.to_string_lossy().into_owned())
    }

    /// The command line for messages and recorded calls (arguments separated by spaces).
    pub fn command_line(&self) -> String {
        self.argv
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A process netctl started. The pair (pid, start time) identifies it even after the pid has
/// been recycled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Spawned {
    pub pid: u32,
    /// Field 22 of `/proc/PID/stat`: clock ticks after boot when the process started.
    pub start_time: u64,
}

/// A socket of netctl's namespace that takes connections or datagrams on a port: a TCP socket
/// in LISTEN, a bound, unconnected UDP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listening {
    /// `tcp` or `udp`.
    pub protocol: String,
    pub addr: std::net::SocketAddr,
    /// The socket's inode, to find who holds it ([`crate::Sockets::socket_owner`]).
    pub inode: u64,
}

/// Formats a sysctl key given as path components in the `sysctl.d` dotted form: components are
/// joined with `.`, and dots inside a component (an interface name like `eth0.10`) become `/`.
pub fn sysctl_key_display(key: &[&str]) -> String {
    key.iter()
        .map(|part| part.replace('.', "/"))
        .collect::<Vec<_>>()
        .join(".")
}

/// Checks an interface name the way the kernel does (`dev_valid_name`).
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace())
}

/// [`valid_ifname`] as an error the kernel would otherwise give less clearly.
pub(crate) fn check_ifname(name: &str) -> Result<(), SysError> {
    if valid_ifname(name) {
        Ok(())
    } else {
        Err(SysError::InvalidInput {
            what: "interface name",
            value: name.to_owned(),
            reason: "must be 1-15 bytes without '/', ':' or whitespace",
        })
    }
}

/// Refuses a link alias the kernel would refuse (longer than `IFALIASZ` - 1 bytes). Checked
/// before a message is built: netlink attributes have a 16-bit length, and an alias past that
/// cannot even be encoded.
pub(crate) fn check_alias(alias: Option<&str>) -> Result<(), SysError> {
    match alias {
        Some(alias) if alias.len() > netctl_types::MAX_LINK_ALIAS_LEN => {
            Err(SysError::InvalidInput {
                what: "link alias",
                value: netctl_types::Shown(alias).to_string(),
                reason: "must be at most 254 bytes",
            })
        }
        _ => Ok(()),
    }
}

/// Refuses routes the kernel would refuse for their shape alone.
pub(crate) fn check_route(route: &Route, adding: bool) -> Result<(), SysError> {
    let invalid = |reason| {
        Err(SysError::InvalidInput {
            what: "route",
            value: route.to_string(),
            reason,
        })
    };
    if route.dst != route.dst.trunc() {
        return invalid("the destination has host bits set");
    }
    if route
        .gateway
        .is_some_and(|gateway| gateway.is_ipv4() != route.dst.addr().is_ipv4())
    {
        return invalid("the gateway is not of the destination's address family");
    }
    if route.kind != RouteKind::Unicast {
        if route.gateway.is_some() || route.dev.is_some() {
            return invalid("a blackhole, unreachable or prohibit route has no gateway or device");
        }
    } else if adding && route.gateway.is_none() && route.dev.is_none() {
        return invalid("a route needs a gateway or a device");
    }
    Ok(())
}

/// Checks a sysctl key given as path components below `/proc/sys`.
pub(crate) fn check_sysctl_key(key: &[&str]) -> Result<(), SysError> {
    let bad = key.is_empty()
        || key.iter().any(|part| {
            part.is_empty() || *part == "." || *part == ".." || part.contains(['/', '\0'])
        });
    if bad {
        return Err(SysError::InvalidInput {
            what: "sysctl key",
            value: key.join("/"),
            reason: "needs non-empty path components without '/', e.g. [\"net\", \"ipv4\", \"ip_forward\"]",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_keys_map_dots_in_components_to_slashes() {
        assert_eq!(
            sysctl_key_display(&["net", "ipv4", "ip_forward"]),
            "net.ipv4.ip_forward"
        );
        assert_eq!(
            sysctl_key_display(&["net", "ipv4", "conf", "eth0.10", "rp_filter"]),
            "net.ipv4.conf.eth0/10.rp_filter"
        );
    }

    #[test]
    fn route_display_reads_like_ip_route() {
        let route = Route::default_via("10.89.0.1".parse().unwrap())
            .dev("eth0")
            .metric(100);
        assert_eq!(
            route.to_string(),
            "default via 10.89.0.1 dev eth0 metric 100"
        );
        let v6 = Route::default_via("fd00::1".parse().unwrap());
        assert_eq!(v6.to_string(), "default (ipv6) via fd00::1");
        assert_eq!(v6.effective_metric(), IPV6_DEFAULT_METRIC);
        let subnet = Route::new("10.0.0.0/8".parse().unwrap()).dev("br0");
        assert_eq!(subnet.to_string(), "10.0.0.0/8 dev br0");
        assert_eq!(subnet.effective_metric(), 0);
    }

    #[test]
    fn link_change_display_lists_only_set_fields() {
        assert_eq!(LinkChange::up().to_string(), "up=true");
        let change = LinkChange {
            master: Some(None),
            alias: Some("netctl".into()),
            mtu: Some(9000),
            ..LinkChange::default()
        };
        assert_eq!(change.to_string(), "mtu=9000 nomaster alias=\"netctl\"");
        assert!(LinkChange::default().is_empty());
    }

    #[test]
    fn interface_names_follow_kernel_rules() {
        assert!(valid_ifname("eth0"));
        assert!(valid_ifname("eth0.10"));
        assert!(valid_ifname("a23456789012345"));
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "a234567890123456"] {
            assert!(!valid_ifname(bad), "{bad:?} should be invalid");
        }
    }
}

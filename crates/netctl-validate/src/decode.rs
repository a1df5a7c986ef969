//! Decoding: the span-preserving TOML tree → [`DesiredState`], one field at a time.
//!
//! Everything that can be judged from one value alone is checked here: key names, value types,
//! number ranges, address and name syntax. A field that fails is reported and left out (at its
//! default), an array element that fails is dropped, and decoding carries on, so one run reports
//! every such mistake. Checks that relate several fields live in `check`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;

use ipnet::{IpNet, Ipv4Net};
use netctl_types::{
    AttachmentSpec, ContainerMode, ContainerSpec, DesiredState, IndexMap, IpamDriver, Isolate,
    LeaseRangeSpec, MacAddr, MacvlanMode, NAME_PATTERN, NetnsSpec, NetworkDriver, NetworkSpec,
    PortHandler, PortSpec, PortTable, Protocol, RESERVED_NAMES, RouteSpec, RouteType, Shown,
    SlirpOptions, SubnetSpec, check_container_id, check_created_interface_name, check_hostname,
    check_interface_name, check_name, is_reserved_name, is_valid_name,
};
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use crate::diagnostic::{Severity, Sink};
use crate::path::{FieldPath, Here, Spans};
use crate::suggest::hint;

type Value<'i> = Spanned<DeValue<'i>>;
type Key<'i> = Spanned<DeString<'i>>;

const ROOT_KEYS: &[&str] = &["project", "networks", "containers"];
const NETWORK_KEYS: &[&str] = &[
    "driver",
    "bridge",
    "subnets",
    "ipv6",
    "internal",
    "mtu",
    "isolate",
    "metric",
    "no_default_route",
    "outbound_addr4",
    "outbound_addr6",
    "routes",
    "ipam_driver",
    "labels",
    "id",
    "external",
    "dns",
    "dns_servers",
    "parent",
    "mode",
    "host_address",
];
const SUBNET_KEYS: &[&str] = &["subnet", "gateway", "lease_range"];
const ROUTE_KEYS: &[&str] = &["destination", "gateway", "metric", "route_type"];
const LEASE_RANGE_KEYS: &[&str] = &["start", "end"];
const CONTAINER_KEYS: &[&str] = &[
    "netns",
    "mode",
    "hostname",
    "id",
    "networks",
    "ports",
    "dns_servers",
    "dns_search",
    "extra_hosts",
    "pasta",
    "slirp4netns",
];
const ATTACHMENT_KEYS: &[&str] = &["ip", "ip6", "mac", "interface", "host_interface", "aliases"];
const PORT_KEYS: &[&str] = &[
    "host_ip",
    "host_port",
    "container_port",
    "range",
    "protocol",
];
const SLIRP_KEYS: &[&str] = &[
    "cidr",
    "mtu",
    "enable_ipv6",
    "allow_host_loopback",
    "outbound_addr",
    "outbound_addr6",
    "port_handler",
];

/// pasta options netctl sets itself; a user's copy would fight netctl's (or hang it, for
/// `--foreground`). Short forms are pasta's.
const PASTA_OWNED_OPTIONS: &[&str] = &[
    "--netns",
    "--config-net",
    "--runas",
    "--pid",
    "-P",
    "--foreground",
    "-f",
    "--quiet",
    "-q",
];

/// slirp4netns refuses an MTU above this.
const SLIRP_MAX_MTU: i64 = 65521;

/// Decodes a parsed document. Returns the state (with every failing part left out) and where
/// each decoded field sits in the text.
/// `spans` decides whether places are remembered (see [`Spans`]).
pub(crate) fn decode(root: &DeTable<'_>, sink: &mut Sink, spans: Spans) -> (DesiredState, Spans) {
    let mut decoder = Decoder { sink, spans };
    let state = decoder.document(root);
    (state, decoder.spans)
}

struct Decoder<'s> {
    sink: &'s mut Sink,
    spans: Spans,
}

/// "an integer", "a table", ... for type errors.
fn with_article(type_name: &str) -> String {
    let article = if type_name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {type_name}")
}

impl Decoder<'_> {
    fn error(&mut self, span: Range<usize>, field: &FieldPath, message: String) {
        self.sink
            .push(Severity::Error, span, field.to_string(), message);
    }

    fn wrong_type(&mut self, value: &Value<'_>, field: &FieldPath, expected: &str) {
        let found = with_article(value.get_ref().type_str());
        self.error(
            value.span(),
            field,
            format!("expected {expected}, found {found}"),
        );
    }

    fn unknown_key(&mut self, key: &Key<'_>, field: &FieldPath, allowed: &[&str], owner: &str) {
        let name = key.get_ref().as_ref();
        let suggestion = hint(name, allowed.iter().copied());
        let message = if suggestion.is_empty() {
            format!(
                "unknown key `{name}` in {owner}; expected one of: {}",
                allowed.join(", ")
            )
        } else {
            format!("unknown key `{name}` in {owner}{suggestion}")
        };
        self.error(key.span(), field, message);
    }

    fn missing_key(&mut self, value: &Value<'_>, field: &FieldPath, key: &str, owner: &str) {
        self.error(
            value.span(),
            field,
            format!("{owner} is missing the required key `{key}`"),
        );
    }

    fn record(&mut self, here: &Here, key: Option<&Key<'_>>, value: &Value<'_>) {
        self.spans
            .record(here, key.map(Spanned::span), value.span());
    }

    fn table<'a, 'i>(
        &mut self,
        value: &'a Value<'i>,
        field: &FieldPath,
    ) -> Option<&'a DeTable<'i>> {
        let table = value.get_ref().as_table();
        if table.is_none() {
            self.wrong_type(value, field, "a table");
        }
        table
    }

    fn array<'a, 'i>(
        &mut self,
        value: &'a Value<'i>,
        field: &FieldPath,
    ) -> Option<&'a [Value<'i>]> {
        let array = value.get_ref().as_array().map(|a| &a[..]);
        if array.is_none() {
            self.wrong_type(value, field, "an array");
        }
        array
    }

    fn string<'a>(&mut self, value: &'a Value<'_>, field: &FieldPath) -> Option<&'a str> {
        let text = value.get_ref().as_str();
        if text.is_none() {
            self.wrong_type(value, field, "a string");
        }
        text
    }

    fn boolean(&mut self, value: &Value<'_>, field: &FieldPath) -> Option<bool> {
        let flag = value.get_ref().as_bool();
        if flag.is_none() {
            self.wrong_type(value, field, "a boolean (true or false)");
        }
        flag
    }

    /// An integer within `min..=max`; `what` names it in the message.
    fn integer_in(
        &mut self,
        value: &Value<'_>,
        field: &FieldPath,
        min: i64,
        max: i64,
        what: &str,
    ) -> Option<i64> {
        let Some(int) = value.get_ref().as_integer() else {
            self.wrong_type(value, field, "an integer");
            return None;
        };
        match i64::from_str_radix(int.as_str(), int.radix()) {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.error(
                    value.span(),
                    field,
                    format!("{what} must be from {min} to {max}, not {int}"),
                );
                None
            }
        }
    }

    fn port_number(&mut self, value: &Value<'_>, field: &FieldPath, what: &str) -> Option<u16> {
        self.integer_in(value, field, 1, 65535, what)
            .and_then(|n| u16::try_from(n).ok())
    }

    fn ip(&mut self, value: &Value<'_>, field: &FieldPath, what: &str) -> Option<IpAddr> {
        let text = self.string(value, field)?;
        if let Ok(ip) = text.parse::<IpAddr>() {
            Some(ip)
        } else {
            self.error(
                value.span(),
                field,
                format!("invalid {what} `{text}`: expected an IP address"),
            );
            None
        }
    }

    /// Network and container names: podman's pattern, and not a reserved word.
    fn check_name(&mut self, kind: &str, key: &Key<'_>, field: &FieldPath) {
        let name = key.get_ref().as_ref();
        if let Err(err) = check_name(name) {
            self.error(
                key.span(),
                field,
                format!("invalid {kind} name `{}`: {err}", Shown(name)),
            );
        } else if is_reserved_name(name) {
            self.error(
                key.span(),
                field,
                format!(
                    "{kind} name `{name}` is reserved (reserved names: {})",
                    RESERVED_NAMES.join(", ")
                ),
            );
        }
    }

    fn interface_name(
        &mut self,
        value: &Value<'_>,
        field: &FieldPath,
        what: &str,
    ) -> Option<String> {
        let name = self.string(value, field)?;
        match check_created_interface_name(name) {
            Ok(()) => Some(name.to_owned()),
            Err(err) => {
                self.error(value.span(), field, format!("invalid {what}: {err}"));
                None
            }
        }
    }

    fn document(&mut self, root: &DeTable<'_>) -> DesiredState {
        let mut state = DesiredState::default();
        let here = Here::default();
        for (key, value) in root {
            let name = key.get_ref().as_ref();
            let at = here.key(name);
            self.record(&at, Some(key), value);
            match name {
                "project" => state.project = self.project(value, &at.file),
                "networks" => state.networks = self.named(value, &at, "network", Self::network),
                "containers" => {
                    state.containers = self.named(value, &at, "container", Self::container);
                }
                _ => self.unknown_key(key, &at.file, ROOT_KEYS, "the top level"),
            }
        }
        state
    }

    /// The project name: a name like a network's.
    fn project(&mut self, value: &Value<'_>, field: &FieldPath) -> Option<String> {
        let name = self.string(value, field)?;
        match check_name(name) {
            Ok(()) => Some(name.to_owned()),
            Err(err) => {
                self.error(
                    value.span(),
                    field,
                    format!("invalid project name `{}`: {err}", Shown(name)),
                );
                None
            }
        }
    }

    /// A table of name → item; names are checked, items decoded by `item`.
    fn named<T>(
        &mut self,
        value: &Value<'_>,
        here: &Here,
        kind: &str,
        item: fn(&mut Self, &Value<'_>, &Here) -> Option<T>,
    ) -> BTreeMap<String, T> {
        let mut out = BTreeMap::new();
        let Some(table) = self.table(value, &here.file) else {
            return out;
        };
        for (key, value) in table {
            let name = key.get_ref().as_ref();
            let at = here.key(name);
            self.record(&at, Some(key), value);
            self.check_name(kind, key, &at.file);
            if let Some(decoded) = item(self, value, &at) {
                out.insert(name.to_owned(), decoded);
            }
        }
        out
    }

    fn network(&mut self, value: &Value<'_>, here: &Here) -> Option<NetworkSpec> {
        let table = self.table(value, &here.file)?;
        let mut spec = NetworkSpec::default();
        for (key, value) in table {
            let name = key.get_ref().as_ref();
            let at = here.key(name);
            self.record(&at, Some(key), value);
            let field = &at.file;
            match name {
                "driver" => match self.string(value, field) {
                    Some("bridge") => spec.driver = NetworkDriver::Bridge,
                    Some("macvlan") => spec.driver = NetworkDriver::Macvlan,
                    Some(driver) => self.error(
                        value.span(),
                        field,
                        format!(
                            "unsupported driver `{driver}`: expected \"bridge\" or \"macvlan\""
                        ),
                    ),
                    None => {}
                },
                "parent" => {
                    spec.parent = self.interface_name(value, field, "parent interface name");
                }
                "mode" => {
                    if let Some(mode) = self.string(value, field) {
                        match MacvlanMode::parse(mode) {
                            Some(mode) => spec.mode = Some(mode),
                            None => self.error(
                                value.span(),
                                field,
                                format!(
                                    "invalid macvlan mode `{mode}`: expected \"bridge\", \"private\", \"vepa\" or \"passthru\""
                                ),
                            ),
                        }
                    }
                }
                "host_address" => spec.host_address = self.ip(value, field, "host address"),
                "bridge" => spec.bridge = self.interface_name(value, field, "bridge name"),
                "subnets" => spec.subnets = self.subnets(value, &at),
                "ipv6" => spec.ipv6 = self.boolean(value, field).unwrap_or_default(),
                "internal" => spec.internal = self.boolean(value, field).unwrap_or_default(),
                "mtu" => {
                    spec.mtu = self
                        .integer_in(value, field, 68, 65535, "mtu")
                        .and_then(|n| u32::try_from(n).ok());
                }
                "isolate" => spec.isolate = self.isolate(value, field).unwrap_or_default(),
                "metric" => {
                    spec.metric = self
                        .integer_in(value, field, 1, i64::from(u32::MAX), "metric")
                        .and_then(|n| u32::try_from(n).ok());
                }
                "no_default_route" => {
                    spec.no_default_route = self.boolean(value, field).unwrap_or_default();
                }
                "routes" => spec.routes = self.routes(value, &at),
                "ipam_driver" => match self.string(value, field) {
                    Some("host-local") => spec.ipam_driver = IpamDriver::HostLocal,
                    Some("none") => spec.ipam_driver = IpamDriver::None,
                    Some(other) => self.error(
                        value.span(),
                        field,
                        format!(
                            "unsupported ipam driver {other}: expected \"host-local\" or \"none\""
                        ),
                    ),
                    None => {}
                },
                "outbound_addr4" => {
                    if let Some(IpAddr::V4(a)) = self.ip_of_family(value, field, name, false) {
                        spec.outbound_addr4 = Some(a);
                    }
                }
                "outbound_addr6" => {
                    if let Some(IpAddr::V6(a)) = self.ip_of_family(value, field, name, true) {
                        spec.outbound_addr6 = Some(a);
                    }
                }
                "labels" => spec.labels = self.labels(value, &at),
                "id" => spec.id = self.container_id(value, field),
                "external" => spec.external = self.boolean(value, field).unwrap_or_default(),
                "dns" => spec.dns = self.boolean(value, field),
                "dns_servers" => spec.dns_servers = self.ips(value, &at, "DNS server"),
                _ => self.unknown_key(key, field, NETWORK_KEYS, "a network"),
            }
        }
        if spec.ipam_driver == IpamDriver::None {
            for (key, _) in table {
                let name = key.get_ref().as_ref();
                let set = match name {
                    "subnets" => !spec.subnets.is_empty(),
                    "ipv6" => spec.ipv6,
                    "routes" => !spec.routes.is_empty(),
                    "outbound_addr4" => spec.outbound_addr4.is_some(),
                    "outbound_addr6" => spec.outbound_addr6.is_some(),
                    _ => false,
                };
                if set {
                    self.error(
                        key.span(),
                        &here.key(name).file,
                        format!("`{name}` cannot be set with ipam_driver \"none\": the network has no addresses"),
                    );
                }
            }
        }
        if spec.external {
            // Someone else's network, used as it is: nothing about it is this file's to say.
            for (key, _) in table {
                let name = key.get_ref().as_ref();
                if name != "external" && NETWORK_KEYS.contains(&name) {
                    self.error(
                        key.span(),
                        &here.key(name).file,
                        format!("`{name}` cannot be set on an external network: it is used as its own project defines it"),
                    );
                }
            }
        }
        Some(spec)
    }

    fn isolate(&mut self, value: &Value<'_>, field: &FieldPath) -> Option<Isolate> {
        match value.get_ref() {
            DeValue::Boolean(true) => Some(Isolate::Enabled),
            DeValue::Boolean(false) => Some(Isolate::Disabled),
            DeValue::String(s) if s == "strict" => Some(Isolate::Strict),
            DeValue::String(s) => {
                let message =
                    format!(r#"invalid isolate value "{s}": expected true, false or "strict""#);
                self.error(value.span(), field, message);
                None
            }
            _ => {
                self.wrong_type(value, field, r#"true, false or "strict""#);
                None
            }
        }
    }

    fn labels(&mut self, value: &Value<'_>, here: &Here) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(table) = self.table(value, &here.file) else {
            return out;
        };
        for (key, value) in table {
            let at = here.key(key.get_ref());
            self.record(&at, Some(key), value);
            if let Some(text) = self.string(value, &at.file) {
                out.insert(key.get_ref().to_string(), text.to_owned());
            }
        }
        out
    }

    fn subnets(&mut self, value: &Value<'_>, here: &Here) -> Vec<SubnetSpec> {
        self.array_of(value, here, Self::subnet)
    }

    /// An array of tables, each decoded by `item`; a bad entry is reported by `item` and left
    /// out, and the places of the good ones are recorded at their index in the result.
    fn array_of<T>(
        &mut self,
        value: &Value<'_>,
        here: &Here,
        mut item: impl FnMut(&mut Self, &Value<'_>, &Here) -> Option<T>,
    ) -> Vec<T> {
        let mut out = Vec::new();
        for (i, entry) in self
            .array(value, &here.file)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let at = here.index(out.len(), i);
            if let Some(decoded) = item(self, entry, &at) {
                self.record(&at, None, entry);
                out.push(decoded);
            } else {
                self.spans.forget_under(&at.state);
            }
        }
        out
    }

    fn subnet(&mut self, value: &Value<'_>, here: &Here) -> Option<SubnetSpec> {
        let table = self.table(value, &here.file)?;
        let mut subnet: Option<IpNet> = None;
        let mut gateway = None;
        let mut lease_range = None;
        let mut failed = false;
        for (key, value) in table {
            let name = key.get_ref().as_ref();
            let at = here.key(name);
            self.record(&at, Some(key), value);
            let field = &at.file;
            match name {
                "subnet" => {
                    let Some(text) = self.string(value, field) else {
                        failed = true;
                        continue;
                    };
                    if let Ok(net) = text.parse::<IpNet>() {
                        subnet = Some(net);
                    } else {
                        failed = true;
                        let hint = if text.parse::<IpAddr>().is_ok() {
                            " (the prefix length is missing)"
                        } else {
                            ""
                        };
                        self.error(
                            value.span(),
                            field,
                            format!(
                                "invalid subnet `{text}`: expected CIDR notation like 10.89.0.0/24{hint}"
                            ),
                        );
                    }
                }
                "gateway" => gateway = self.ip(value, field, "gateway"),
                "lease_range" => lease_range = self.lease_range(value, &at),
                _ => self.unknown_key(key, field, SUBNET_KEYS, "a subnet"),
            }
        }
        if subnet.is_none() && !failed {
            self.missing_key(value, &here.file, "subnet", "a subnet");
        }
        Some(SubnetSpec {
            subnet: subnet?,
            gateway,
            lease_range,
        })
    }

    /// An address that must be IPv6 (`v6`) or IPv4.
    fn ip_of_family(
        &mut self,
        value: &Value<'_>,
        field: &FieldPath,
        what: &str,
        v6: bool,
    ) -> Option<IpAddr> {
        let ip = self.ip(value, field, what)?;
        if ip.is_ipv6() == v6 {
            Some(ip)
        } else {
            let family = if v6 { "IPv6" } else { "IPv4" };
            self.error(
                value.span(),
                field,
                format!("{what} must be an {family} address"),
            );
            None
        }
    }

    fn routes(&mut self, value: &Value<'_>, here: &Here) -> Vec<RouteSpec> {
        self.array_of(value, here, Self::route)
    }

    /// One route: netavark's keys and checks (a gateway of the destination's family, none on
    /// a route that goes nowhere).
    fn route(&mut self, value: &Value<'_>, here: &Here) -> Option<RouteSpec> {
        let table = self.table(value, &here.file)?;
        let mut destination: Option<IpNet> = None;
        let mut gateway = None;
        let mut metric = None;
        let mut route_type = RouteType::Unicast;
        let mut failed = false;
        for (key, value) in table {
            let name = key.get_ref().as_ref();
            let at = here.key(name);
            self.record(&at, Some(key), value);
            let field = &at.file;
            match name {
                "destination" => match self.string(value, field).map(str::parse::<IpNet>) {
                    Some(Ok(net)) => destination = Some(net.trunc()),
                    Some(Err(_)) => {
                        failed = true;
                        self.error(
                            value.span(),
                            field,
                            "invalid route destination: expected CIDR notation like 10.10.0.0/16"
                                .to_owned(),
                        );
                    }
                    None => failed = true,
                },
                "gateway" => gateway = self.ip(value, field, "route gateway"),
                "metric" => {
                    metric = self
                        .integer_in(value, field, 0, i64::from(u32::MAX), "metric")
                        .and_then(|n| u32::try_from(n).ok());
                }
                "route_type" => {
                    if let Some(text) = self.string(value, field) {
                        match RouteType::from_name(text) {
                            Some(t) => route_type = t,
                            None => self.error(
                                value.span(),
                                field,
                                format!(
                                    "invalid route type \"{text}\": expected unicast, blackhole, unreachable or prohibit"
                                ),
                            ),
                        }
                    }
                }
                _ => self.unknown_key(key, field, ROUTE_KEYS, "a route"),
            }
        }
        if destination.is_none() && !failed {
            self.missing_key(value, &here.file, "destination", "a route");
        }
        let destination = destination?;
        if let Some(gw) = gateway {
            if gw.is_ipv4() != destination.addr().is_ipv4() {
                self.error(
                    value.span(),
                    &here.file,
                    format!("route with a destination and a gateway of different families ({destination} via {gw})"),
                );
            } else if route_type != RouteType::Unicast {
                self.error(
                    value.span(),
                    &here.file,
                    format!("a {} route has no gateway", route_type.as_str()),
                );
            }
        }
        Some(RouteSpec {
            destination,
            gateway,
            metric,
            route_type,
        })
    }

    fn lease_range(&mut self, value: &Value<'_>, here: &Here) -> Option<LeaseRangeSpec> {
        let table = self.table(value, &here.file)?;
        let mut range = LeaseRangeSpec::default();
        for (key, value) in table {
            let name = key.get_ref().as_ref();
            let at = here.key(name);
            self.record(&at, Some(key), value);
            match name {
                "start" => range.start = self.ip(value, &at.file, "lease_range start"),
                "end" => range.end = self.ip(value, &at.file, "lease_range end"),
                _ => self.unknown_key(key, &at.file, LEASE_RANGE_KEYS, "a lease_range"),
            }
        }
        Some(range)
    }

    fn container(&mut self, value: &Value<'_>, here: &Here) -> Option<ContainerSpec> {
        let table = self.table(value, &here.file)?;
        let mut spec = ContainerSpec::default();
        for (key, value) in table {
            let name = key.get_ref().as_ref();
            let at = here.key(name);
            self.record(&at, Some(key), value);
            let field = &at.file;
            match name {
                "netns" => {
                    if let Some(netns) = self.netns(value, field) {
                        spec.netns = netns;
                    }
                }
                "mode" => {
                    if let Some(mode) = self.mode(value, field) {
                        spec.mode = mode;
                    }
                }
                "hostname" => spec.hostname = self.hostname(value, field, "hostname"),
                "id" => spec.id = self.container_id(value, field),
                "networks" => spec.networks = self.attachments(value, &at),
                "ports" => spec.ports = self.ports(value, &at),
                "dns_servers" => spec.dns_servers = self.ips(value, &at, "DNS server"),
                "dns_search" => spec.dns_search = self.dns_search(value, &at),
                "extra_hosts" => spec.extra_hosts = self.extra_hosts(value, &at),
                "pasta" => spec.pasta = self.pasta_options(value, &at),
                "slirp4netns" => spec.slirp4netns = self.slirp(value, &at),
                _ => self.unknown_key(key, field, CONTAINER_KEYS, "a container"),
            }
        }
        Some(spec)
    }

    fn netns(&mut self, value: &Value<'_>, field: &FieldPath) -> Option<NetnsSpec> {
        let text = self.string(value, field)?;
        let parsed = NetnsSpec::parse(text);
        if parsed.is_none() {
            self.error(
                value.span(),
                field,
                format!(r#"netns must be "managed" or an absolute path, not `{text}`"#),
            );
        }
        parsed
    }

    fn mode(&mut self, value: &Value<'_>, field: &FieldPath) -> Option<ContainerMode> {
        let text = self.string(value, field)?;
        let mode = ContainerMode::parse(text);
        if mode.is_none() {
            let names = ContainerMode::ALL.map(ContainerMode::as_str);
            let suggestion = hint(text, names);
            self.error(
                value.span(),
                field,
                format!(
                    "unknown mode `{text}`: expected bridge, pasta, slirp4netns or none{suggestion}"
                ),
            );
        }
        mode
    }

    fn hostname(&mut self, value: &Value<'_>, field: &FieldPath, what: &str) -> Option<String> {
        let text = self.string(value, field)?;
        match check_hostname(text) {
            Ok(()) => Some(text.to_owned()),
            Err(err) => {
                self.error(value.span(), field, format!("invalid {what}: {err}"));
                None
            }
        }
    }

    fn container_id(&mut self, value: &Value<'_>, field: &FieldPath) -> Option<String> {
        let text = self.string(value, field)?;
        match check_container_id(text) {
            Ok(()) => Some(text.to_owned()),
            Err(why) => {
                self.error(
                    value.span(),
                    field,
                    format!(
                        "invalid container id `{}`: it {why} (leave it out to have one generated)",
                        Shown(text)
                    ),
                );
                None
            }
        }
    }

    /// A container's networks, in the order the file gives them (the first is its primary
    /// network): by where each key stands, whatever order the parser's map keeps.
    fn attachments(&mut self, value: &Value<'_>, here: &Here) -> IndexMap<String, AttachmentSpec> {
        let mut out = IndexMap::new();
        let Some(table) = self.table(value, &here.file) else {
            return out;
        };
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        for (key, value) in entries {
            let name = key.get_ref().as_ref();
            let at = here.key(name);
            self.record(&at, Some(key), value);
            if let Some(attachment) = self.attachment(value, &at) {
                out.insert(name.to_owned(), attachment);
            }
        }
        out
    }

    fn attachment(&mut self, value: &Value<'_>, here: &Here) -> Option<AttachmentSpec> {
        let table = self.table(value, &here.file)?;
        let mut spec = AttachmentSpec::default();
        for (key, value) in table {
            let name = key.get_ref().as_ref();
            let at = here.key(name);
            self.record(&at, Some(key), value);
            let field = &at.file;
            match name {
                "ip" => match self.ip(value, field, "ip") {
                    Some(IpAddr::V4(ip)) => spec.ip = Some(ip),
                    Some(IpAddr::V6(ip)) => self.error(
                        value.span(),
                        field,
                        format!("`ip` must be an IPv4 address, but {ip} is IPv6; use `ip6`"),
                    ),
                    None => {}
                },
                "ip6" => match self.ip(value, field, "ip6") {
                    Some(IpAddr::V6(ip)) => spec.ip6 = Some(ip),
                    Some(IpAddr::V4(ip)) => self.error(
                        value.span(),
                        field,
                        format!("`ip6` must be an IPv6 address, but {ip} is IPv4; use `ip`"),
                    ),
                    None => {}
                },
                "mac" => spec.mac = self.mac(value, field),
                "interface" => spec.interface = self.interface_name(value, field, "interface name"),
                "host_interface" => {
                    spec.host_interface = self.interface_name(value, field, "host interface name");
                }
                "aliases" => spec.aliases = self.aliases(value, &at),
                _ => self.unknown_key(key, field, ATTACHMENT_KEYS, "a network attachment"),
            }
        }
        Some(spec)
    }

    fn mac(&mut self, value: &Value<'_>, field: &FieldPath) -> Option<MacAddr> {
        let text = self.string(value, field)?;
        let mac = match text.parse::<MacAddr>() {
            Ok(mac) => mac,
            Err(err) => {
                self.error(value.span(), field, err.to_string());
                return None;
            }
        };
        if mac.is_zero() {
            self.error(
                value.span(),
                field,
                format!("MAC address {mac} is all zeros, which no interface may have"),
            );
            None
        } else if mac.is_multicast() {
            self.error(
                value.span(),
                field,
                format!(
                    "MAC address {mac} is a multicast address (lowest bit of the first octet set); an interface needs a unicast one"
                ),
            );
            None
        } else {
            Some(mac)
        }
    }

    fn aliases(&mut self, value: &Value<'_>, here: &Here) -> Vec<String> {
        let mut out = Vec::new();
        for (i, item) in self
            .array(value, &here.file)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let at = here.index(out.len(), i);
            let Some(alias) = self.string(item, &at.file) else {
                continue;
            };
            if !is_valid_name(alias) {
                self.error(
                    item.span(),
                    &at.file,
                    format!("invalid alias `{alias}`: aliases must match {NAME_PATTERN}"),
                );
            } else if let Err(e) = netctl_types::check_dns_name(alias) {
                self.error(
                    item.span(),
                    &at.file,
                    format!("invalid alias `{alias}`: {e}"),
                );
            } else {
                self.record(&at, None, item);
                out.push(alias.to_owned());
            }
        }
        out
    }

    fn ports(&mut self, value: &Value<'_>, here: &Here) -> Vec<PortSpec> {
        self.array_of(value, here, |this, item, at| match item.get_ref() {
            // `-p` strings are parsed with the cross-field port checks, which need the
            // mappings anyway.
            DeValue::String(spec) => Some(PortSpec::Podman(spec.to_string())),
            DeValue::Table(table) => this.port_table(item, table, at).map(PortSpec::Table),
            _ => {
                this.wrong_type(
                    item,
                    &at.file,
                    "a port table or a podman -p string like \"8080:80/tcp\"",
                );
                None
            }
        })
    }

    fn port_table(
        &mut self,
        value: &Value<'_>,
        table: &DeTable<'_>,
        here: &Here,
    ) -> Option<PortTable> {
        let mut host_ip = None;
        let mut host_port = None;
        let mut container_port = None;
        let mut range = 1;
        let mut protocol = Protocol::Tcp;
        let mut failed = false;
        for (key, value) in table {
            let name = key.get_ref().as_ref();
            let at = here.key(name);
            self.record(&at, Some(key), value);
            let field = &at.file;
            match name {
                // "" is how podman writes "every address"; accept it as the same as leaving it out.
                "host_ip" if value.get_ref().as_str() == Some("") => {}
                "host_ip" => {
                    host_ip = self.ip(value, field, "host_ip");
                    failed |= host_ip.is_none();
                }
                "host_port" => {
                    host_port = self.port_number(value, field, "host_port");
                    failed |= host_port.is_none();
                }
                "container_port" => {
                    container_port = self.port_number(value, field, "container_port");
                    failed |= container_port.is_none();
                }
                "range" => match self.port_number(value, field, "range") {
                    Some(n) => range = n,
                    None => failed = true,
                },
                "protocol" => {
                    let Some(text) = self.string(value, field) else {
                        failed = true;
                        continue;
                    };
                    match text.parse::<Protocol>() {
                        Ok(p) => protocol = p,
                        Err(err) => {
                            failed = true;
                            self.error(value.span(), field, err.to_string());
                        }
                    }
                }
                _ => {
                    failed = true;
                    self.unknown_key(key, field, PORT_KEYS, "a port table");
                }
            }
        }
        if container_port.is_none() && !failed {
            self.missing_key(value, &here.file, "container_port", "a port table");
        }
        if failed {
            return None;
        }
        Some(PortTable {
            host_ip,
            host_port,
            container_port: container_port?,
            range,
            protocol,
        })
    }

    fn ips(&mut self, value: &Value<'_>, here: &Here, what: &str) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for (i, item) in self
            .array(value, &here.file)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let at = here.index(out.len(), i);
            if let Some(ip) = self.ip(item, &at.file, what) {
                self.record(&at, None, item);
                out.push(ip);
            }
        }
        out
    }

    fn dns_search(&mut self, value: &Value<'_>, here: &Here) -> Vec<String> {
        let mut out = Vec::new();
        for (i, item) in self
            .array(value, &here.file)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let at = here.index(out.len(), i);
            // "." is resolv.conf's "no search domains", as podman's --dns-search=. means.
            let domain = match item.get_ref().as_str() {
                Some(".") => Some(".".to_owned()),
                _ => self.hostname(item, &at.file, "search domain"),
            };
            if let Some(domain) = domain {
                self.record(&at, None, item);
                out.push(domain);
            }
        }
        out
    }

    fn extra_hosts(&mut self, value: &Value<'_>, here: &Here) -> Vec<String> {
        let mut out = Vec::new();
        for (i, item) in self
            .array(value, &here.file)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let at = here.index(out.len(), i);
            let Some(entry) = self.string(item, &at.file) else {
                continue;
            };
            match check_extra_host(entry) {
                Ok(()) => {
                    self.record(&at, None, item);
                    out.push(entry.to_owned());
                }
                Err(why) => self.error(
                    item.span(),
                    &at.file,
                    format!("invalid extra_hosts entry `{entry}`: {why}"),
                ),
            }
        }
        out
    }

    fn pasta_options(&mut self, value: &Value<'_>, here: &Here) -> Vec<String> {
        let mut out = Vec::new();
        for (i, item) in self
            .array(value, &here.file)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let at = here.index(out.len(), i);
            let Some(option) = self.string(item, &at.file) else {
                continue;
            };
            let owned = PASTA_OWNED_OPTIONS.iter().find(|owned| {
                option == **owned
                    || option
                        .strip_prefix(**owned)
                        .is_some_and(|rest| rest.starts_with('=') && owned.starts_with("--"))
            });
            if let Some(owned) = owned {
                self.error(
                    item.span(),
                    &at.file,
                    format!("pasta option `{owned}` is set by netctl itself and cannot be given"),
                );
            } else {
                self.record(&at, None, item);
                out.push(option.to_owned());
            }
        }
        out
    }

    fn slirp(&mut self, value: &Value<'_>, here: &Here) -> Option<SlirpOptions> {
        let table = self.table(value, &here.file)?;
        let mut opts = SlirpOptions::default();
        for (key, value) in table {
            let name = key.get_ref().as_ref();
            let at = here.key(name);
            self.record(&at, Some(key), value);
            let field = &at.file;
            match name {
                "cidr" => opts.cidr = self.slirp_cidr(value, field),
                "mtu" => {
                    opts.mtu = self
                        .integer_in(value, field, 68, SLIRP_MAX_MTU, "slirp4netns mtu")
                        .and_then(|n| u32::try_from(n).ok());
                }
                "enable_ipv6" => opts.enable_ipv6 = self.boolean(value, field),
                "allow_host_loopback" => opts.allow_host_loopback = self.boolean(value, field),
                "outbound_addr" => opts.outbound_addr = self.outbound(value, field, false),
                "outbound_addr6" => opts.outbound_addr6 = self.outbound(value, field, true),
                "port_handler" => {
                    let Some(text) = self.string(value, field) else {
                        continue;
                    };
                    opts.port_handler = match text {
                        "rootlesskit" => Some(PortHandler::Rootlesskit),
                        "slirp4netns" => Some(PortHandler::Slirp4netns),
                        other => {
                            self.error(
                                value.span(),
                                field,
                                format!(
                                    "unknown port_handler `{other}`: expected rootlesskit or slirp4netns"
                                ),
                            );
                            None
                        }
                    };
                }
                _ => self.unknown_key(key, field, SLIRP_KEYS, "the slirp4netns options"),
            }
        }
        Some(opts)
    }

    fn slirp_cidr(&mut self, value: &Value<'_>, field: &FieldPath) -> Option<Ipv4Net> {
        let text = self.string(value, field)?;
        match text.parse::<IpNet>() {
            Ok(IpNet::V4(net)) => Some(net),
            Ok(IpNet::V6(_)) => {
                self.error(
                    value.span(),
                    field,
                    format!("slirp4netns cidr `{text}` is IPv6; it must be an IPv4 network"),
                );
                None
            }
            Err(_) => {
                self.error(
                    value.span(),
                    field,
                    format!("invalid slirp4netns cidr `{text}`: expected an IPv4 network like 10.0.2.0/24"),
                );
                None
            }
        }
    }

    /// An outbound address: an IP of the right family, or a host interface name.
    fn outbound(&mut self, value: &Value<'_>, field: &FieldPath, v6: bool) -> Option<String> {
        let text = self.string(value, field)?;
        let (key, family) = if v6 {
            ("outbound_addr6", "IPv6")
        } else {
            ("outbound_addr", "IPv4")
        };
        let problem = match text.parse::<IpAddr>() {
            Ok(ip) if ip.is_ipv6() == v6 => None,
            Ok(ip) => Some(format!("{key} {ip} is not an {family} address")),
            Err(_) => check_interface_name(text).err().map(|err| {
                format!(
                    "{key} `{text}` is neither an {family} address nor an interface name ({err})"
                )
            }),
        };
        match problem {
            None => Some(text.to_owned()),
            Some(message) => {
                self.error(value.span(), field, message);
                None
            }
        }
    }
}

/// Every table read key by key, as a path from the top of the file (`*` for any name, `[]` for
/// any array element, "" for the top level), with the keys accepted there. Exported by
/// [`crate::known_keys`], so the JSON Schema (`netctl schema`) and the docs can be held to them.
pub(crate) const TABLE_KEYS: &[(&str, &[&str])] = &[
    ("", ROOT_KEYS),
    ("networks.*", NETWORK_KEYS),
    ("networks.*.subnets[]", SUBNET_KEYS),
    ("networks.*.subnets[].lease_range", LEASE_RANGE_KEYS),
    ("networks.*.routes[]", ROUTE_KEYS),
    ("containers.*", CONTAINER_KEYS),
    ("containers.*.networks.*", ATTACHMENT_KEYS),
    ("containers.*.ports[]", PORT_KEYS),
    ("containers.*.slirp4netns", SLIRP_KEYS),
];

/// podman's `--add-host` form: `name[;name...]:ip`, split at the first colon so IPv6 addresses
/// keep theirs.
fn check_extra_host(entry: &str) -> Result<(), String> {
    let Some((names, ip)) = entry.split_once(':') else {
        return Err("expected name:ip".to_owned());
    };
    if names.is_empty() {
        return Err("the name is empty".to_owned());
    }
    for name in names.split(';') {
        check_hostname(name).map_err(|err| err.to_string())?;
    }
    if ip.parse::<IpAddr>().is_err() {
        return Err(format!("`{ip}` is not an IP address"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_host_forms() {
        assert_eq!(check_extra_host("db:10.0.0.1"), Ok(()));
        assert_eq!(check_extra_host("db;db.local:fd00::1"), Ok(()));
        assert_eq!(check_extra_host("db"), Err("expected name:ip".into()));
        assert_eq!(
            check_extra_host(":1.2.3.4"),
            Err("the name is empty".into())
        );
        assert_eq!(
            check_extra_host("db:nope"),
            Err("`nope` is not an IP address".into())
        );
        assert!(check_extra_host("bad_name:1.2.3.4").is_err());
    }

    #[test]
    fn articles() {
        assert_eq!(with_article("integer"), "an integer");
        assert_eq!(with_article("table"), "a table");
    }
}

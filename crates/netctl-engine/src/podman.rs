//! netavark's `setup` and `teardown`, for podman: the networks and per-network options podman
//! sends become records (podman's network ids, podman's addresses as static ones), so
//! `netctl show`, `inspect`, `plan` and `reload` know podman's containers too.
//!
//! Like `connect`, these act only on the container and networks named in the request, plan
//! against the records (no full observation) and verify only what they touched, so their cost
//! does not grow with the number of containers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use std::path::Path;

use netctl_plan::Resource;
use netctl_state::StateRead as _;
use netctl_types::{
    AttachmentSpec, BridgeMode, ContainerMode, ContainerSpec, DesiredState, IndexMap, IpamDriver,
    Isolate, LeaseRangeSpec, MacAddr, NetAddress, NetInterface, NetnsSpec, Network,
    NetworkCreateConfig, NetworkOptions, NetworkSpec, PortSpec, PortTable, RouteSpec, RouteType,
    Shown, StatusBlock, Subnet, SubnetSpec,
};

use crate::exec::{Verify, desired_from_recorded, execute};
use crate::{Engine, EngineError, Result};

/// Marks a network netctl recorded because podman asked for it: like netavark, netctl removes
/// such a network's bridge and rules when its last container leaves (podman keeps the network
/// definition itself).
pub const PODMAN_LABEL: &str = "netctl.podman";

/// A podman network definition as a desired network.
fn network_spec(net: &Network) -> Result<NetworkSpec> {
    if net.driver == "macvlan" {
        return macvlan_spec(net);
    }
    if net.driver != "bridge" {
        return Err(EngineError::Invalid(format!(
            "network {}: driver {:?} is not supported (only bridge and macvlan)",
            net.name, net.driver
        )));
    }
    let bridge_mode = check_options(net)?;
    let bridge = net.network_interface.clone().ok_or_else(|| {
        EngineError::Invalid(format!(
            "network {}: no network_interface (bridge name)",
            net.name
        ))
    })?;
    let mtu = match net.options.get("mtu") {
        Some(m) if !m.is_empty() && m != "0" => Some(m.parse::<u32>().map_err(|_| {
            EngineError::Invalid(format!(
                "network {}: mtu option {m:?} is not a number",
                net.name
            ))
        })?),
        _ => None,
    };
    let metric = match net.options.get("metric").map(String::as_str) {
        None | Some("") => None,
        Some(m) => Some(m.parse::<u32>().ok().filter(|m| *m > 0).ok_or_else(|| {
            EngineError::Invalid(format!(
                "network {}: invalid metric option {m:?} (a number from 1)",
                net.name
            ))
        })?),
    };
    let no_default_route = match net.options.get("no_default_route").map(String::as_str) {
        None | Some("" | "false" | "0") => false,
        Some("true" | "1") => true,
        Some(other) => {
            return Err(EngineError::Invalid(format!(
                "network {}: invalid no_default_route option {other:?} (true or false)",
                net.name
            )));
        }
    };
    let outbound = |key: &str| -> Result<Option<IpAddr>> {
        match net.options.get(key).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(a) => a.parse().map(Some).map_err(|_| {
                EngineError::Invalid(format!(
                    "network {}: invalid {key} option {a:?} (an address)",
                    net.name
                ))
            }),
        }
    };
    let family = |key: &str, v6: bool| -> Result<Option<IpAddr>> {
        match outbound(key)? {
            Some(a) if a.is_ipv6() != v6 => Err(EngineError::Invalid(format!(
                "network {}: {key} must be an IPv{} address",
                net.name,
                if v6 { 6 } else { 4 }
            ))),
            other => Ok(other),
        }
    };
    let outbound_addr4 = match family("outbound_addr4", false)? {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    };
    let outbound_addr6 = match family("outbound_addr6", true)? {
        Some(IpAddr::V6(a)) => Some(a),
        _ => None,
    };
    let isolate = match net.options.get("isolate").map(String::as_str) {
        None | Some("" | "false") => Isolate::Disabled,
        Some("true") => Isolate::Enabled,
        Some("strict") => Isolate::Strict,
        Some(other) => {
            return Err(EngineError::Invalid(format!(
                "network {}: invalid isolate option {other:?} (true, false or strict)",
                net.name
            )));
        }
    };
    if bridge_mode == BridgeMode::Unmanaged {
        check_unmanaged(
            net,
            isolate,
            outbound_addr4.is_some() || outbound_addr6.is_some(),
        )?;
    }
    Ok(NetworkSpec {
        bridge: Some(bridge),
        bridge_mode,
        subnets: net
            .subnets
            .iter()
            .map(|s| SubnetSpec {
                subnet: s.subnet.trunc(),
                gateway: s.gateway,
                lease_range: s.lease_range.as_ref().map(|r| LeaseRangeSpec {
                    start: r.start_ip,
                    end: r.end_ip,
                }),
            })
            .collect(),
        ipv6: net.ipv6_enabled,
        internal: net.internal,
        mtu,
        isolate,
        metric,
        no_default_route,
        outbound_addr4,
        outbound_addr6,
        ipam_driver: if net.ipam_options.get("driver").map(String::as_str) == Some("none") {
            IpamDriver::None
        } else {
            IpamDriver::HostLocal
        },
        routes: net
            .routes
            .iter()
            .map(|r| RouteSpec {
                destination: r.destination.trunc(),
                gateway: r.gateway,
                metric: r.metric,
                route_type: r
                    .route_type
                    .as_deref()
                    .and_then(RouteType::from_name)
                    .unwrap_or_default(),
            })
            .collect(),
        labels: {
            let mut labels = net.labels.clone();
            labels.insert(PODMAN_LABEL.to_owned(), "true".to_owned());
            labels
        },
        id: Some(net.id.clone()),
        // Whether it is served is decided by `setup` (it needs aardvark-dns); the request is
        // checked as podman sent it, so its names are DNS names whenever podman asked for DNS.
        dns: Some(net.dns_enabled),
        dns_servers: net.network_dns_servers.clone(),
        ..NetworkSpec::default()
    })
}

/// A podman macvlan network (`podman network create -d macvlan -o parent=... -o mode=...`) as
/// a desired network: `network_interface` is the parent (none: the default route's
/// interface), `options.mode` and `options.mtu` podman's; addresses come from podman (its
/// host-local IPAM) as static ones. DHCP needs a resident client netctl does not have.
fn macvlan_spec(net: &Network) -> Result<NetworkSpec> {
    if let Some(driver) = net.ipam_options.get("driver")
        && driver == "dhcp"
    {
        return Err(EngineError::Invalid(format!(
            "network {}: dhcp ipam driver is not supported by netctl; give the network a subnet so podman assigns addresses",
            net.name
        )));
    }
    let mode = match net.options.get("mode").map(String::as_str) {
        None | Some("") => None,
        Some(mode) => Some(
            netctl_types::MacvlanMode::parse(mode)
                .ok_or_else(|| EngineError::Invalid(format!("invalid macvlan mode {mode:?}")))?,
        ),
    };
    let bridge_only = ["isolate"];
    if let Some(key) = bridge_only.iter().find(|k| net.options.contains_key(**k)) {
        return Err(EngineError::Invalid(format!(
            "network {}: option {key} is not supported on a macvlan network",
            net.name
        )));
    }
    let mut bridge_like = Network {
        driver: "bridge".into(),
        network_interface: Some(String::new()),
        ..net.clone()
    };
    bridge_like.options.remove("mode");
    let base = network_spec(&bridge_like)?;
    Ok(NetworkSpec {
        driver: netctl_types::NetworkDriver::Macvlan,
        bridge: None,
        parent: net.network_interface.clone().filter(|p| !p.is_empty()),
        mode,
        // As netavark: aardvark-dns serves bridge networks only, whatever podman's
        // `dns_enabled` says of a macvlan one (the StatusBlock then names no DNS server).
        dns: None,
        dns_servers: Vec::new(),
        ..base
    })
}

/// Bridge options netavark knows that netctl does not carry out, each with why: refused
/// clearly rather than accepted and ignored.
const REFUSED_OPTIONS: &[(&str, &str)] = &[
    (
        "vrf",
        "VRF devices are not supported (this kernel has no vrf module)",
    ),
    (
        "vlan",
        "bridge VLAN filtering is not supported (this kernel has no bridge VLAN filtering)",
    ),
];

/// What netctl cannot honour on a network with a borrowed bridge (`mode=unmanaged`), refused
/// rather than accepted and ignored: netavark sets up no firewall there (so `isolate` and the
/// outbound addresses would do nothing), and netctl's aardvark-dns listens only on gateway
/// addresses it puts on bridges of its own.
fn check_unmanaged(net: &Network, isolate: Isolate, outbound: bool) -> Result<()> {
    let refuse = |what: &str, why: &str| {
        Err(EngineError::Invalid(format!(
            "network {}: {what} cannot be honoured in unmanaged mode: {why}",
            net.name
        )))
    };
    if isolate != Isolate::Disabled {
        return refuse(
            "option isolate",
            "no firewall is set up for a bridge netctl does not manage",
        );
    }
    if outbound {
        return refuse(
            "options outbound_addr4/outbound_addr6",
            "no firewall is set up for a bridge netctl does not manage, so outbound traffic is not NATed at all",
        );
    }
    if net.dns_enabled {
        return refuse(
            "dns_enabled",
            "netctl's aardvark-dns serves only bridges netctl manages; create the network with --disable-dns",
        );
    }
    Ok(())
}

/// Port mappings of a container whose first interface (where netctl forwards published
/// ports) is on a network with a borrowed bridge: netavark forwards no ports there, and
/// netctl refuses rather than accepting and ignoring them.
fn check_unmanaged_ports(state: &DesiredState, container: &ContainerSpec) -> Result<()> {
    if container.ports.is_empty() {
        return Ok(());
    }
    let first = container.networks.iter().min_by_key(|(_, att)| {
        crate::fwmap::interface_order(att.interface.as_deref().unwrap_or(""))
    });
    if let Some((name, _)) = first
        && state
            .networks
            .get(name)
            .is_some_and(|n| n.bridge_mode == BridgeMode::Unmanaged)
    {
        return Err(EngineError::Invalid(format!(
            "network {name}: port mappings cannot be honoured in unmanaged mode: no firewall is set up for a bridge netctl does not manage, so nothing would forward them; publish ports through a managed network as the container's first, or reach the container at its own address"
        )));
    }
    Ok(())
}

/// Every option, route and IPAM driver of a podman network is one netctl carries out, or the
/// request is refused naming it: nothing is accepted and ignored. Returns the bridge's mode.
fn check_options(net: &Network) -> Result<BridgeMode> {
    let refuse = |what: String| {
        Err(EngineError::Invalid(format!(
            "network {}: {what}",
            net.name
        )))
    };
    let mut mode = BridgeMode::Managed;
    for (key, value) in &net.options {
        match key.as_str() {
            "mtu" | "isolate" | "metric" | "no_default_route" | "outbound_addr4"
            | "outbound_addr6" => {}
            "mode" => match BridgeMode::parse(value) {
                Some(m) => mode = m,
                None => return refuse(format!("invalid bridge mode {value:?}")),
            },
            _ => match REFUSED_OPTIONS.iter().find(|(k, _)| k == key) {
                Some((_, why)) => {
                    return refuse(format!("unsupported bridge network option: {key} ({why})"));
                }
                None => return refuse(format!("unsupported bridge network option: {key}")),
            },
        }
    }
    let types = [
        None,
        Some("unicast"),
        Some("blackhole"),
        Some("unreachable"),
        Some("prohibit"),
    ];
    if let Some(route) = net
        .routes
        .iter()
        .find(|r| !types.contains(&r.route_type.as_deref()))
    {
        let kind = route.route_type.as_deref().unwrap_or_default();
        return refuse(format!("invalid route type {kind:?}"));
    }
    match net.ipam_options.get("driver").map(String::as_str) {
        None | Some("" | "host-local" | "none") => {}
        Some(other) => return refuse(format!("unsupported ipam driver {other}")),
    }
    Ok(mode)
}

/// Per-network options of a container: netavark knows only `host_interface_name` (the host
/// end of the veth); anything else is refused naming it.
fn check_per_network_options(net: &str, per: &netctl_types::PerNetworkOptions) -> Result<()> {
    if let Some(key) = per
        .options
        .iter()
        .flatten()
        .map(|(k, _)| k)
        .find(|k| *k != "host_interface_name")
    {
        return Err(EngineError::Invalid(format!(
            "network {net}: unsupported per-network option: {key}"
        )));
    }
    Ok(())
}

/// Whether a step of a setup's plan is the setup's business: its containers (the requested one
/// and the stale ones it replaces) with all their attachments, the requested networks, and the
/// firewall table when it is gone (a reboot, a flush).
fn keep_step(resource: &Resource, containers: &[&String], networks: &BTreeSet<String>) -> bool {
    match resource {
        Resource::Network { name } => networks.contains(name),
        Resource::Container { name }
        | Resource::Attachment {
            container: name, ..
        } => containers.contains(&name),
        Resource::Firewall => true,
    }
}

/// The name a request's container is recorded under: podman's name, else its short id.
fn container_name(opts: &NetworkOptions) -> String {
    if opts.container_name.is_empty() {
        opts.container_id.chars().take(12).collect()
    } else {
        opts.container_name.clone()
    }
}

/// Checks a netavark setup request the way [`setup`] does before it reads or changes
/// anything; returns the request as a desired state. Pure: what fuzzing drives.
pub fn check_request(netns: &Path, opts: &NetworkOptions) -> Result<DesiredState> {
    requested_state(netns, opts, &container_name(opts)).map(|(state, _)| state)
}

/// What a netavark request asks for, as a desired state of its own: the requested networks
/// (podman's definitions) and the one container with its attachments and ports. Checked by the
/// same validator as a TOML file before anything is read or changed.
fn requested_state(
    netns: &Path,
    opts: &NetworkOptions,
    name: &str,
) -> Result<(DesiredState, BTreeSet<String>)> {
    if opts.networks.is_empty() {
        return Err(EngineError::Invalid("no networks given to set up".into()));
    }
    let mut state = DesiredState::default();
    let mut attachments = IndexMap::new();
    for (net_name, per) in opts.networks.iter() {
        let info = opts.network_info.get(net_name).ok_or_else(|| {
            EngineError::Invalid(format!(
                "network info for network {} not found",
                Shown(net_name)
            ))
        })?;
        state
            .networks
            .insert(net_name.to_owned(), network_spec(info)?);
        check_per_network_options(net_name, per)?;
        let mut ip = None;
        let mut ip6 = None;
        for addr in per.static_ips.iter().flatten() {
            match addr {
                IpAddr::V4(v4) => ip = Some(*v4),
                IpAddr::V6(v6) => ip6 = Some(*v6),
            }
        }
        attachments.insert(
            net_name.to_owned(),
            AttachmentSpec {
                ip,
                ip6,
                mac: per.static_mac,
                interface: Some(per.interface_name.clone()),
                host_interface: per
                    .options
                    .as_ref()
                    .and_then(|o| o.get("host_interface_name"))
                    .filter(|n| !n.is_empty())
                    .cloned(),
                aliases: per.aliases.clone().unwrap_or_default(),
            },
        );
    }
    let mut ports = Vec::new();
    for p in opts.port_mappings.iter().flatten() {
        let host_ip = if p.host_ip.is_empty() {
            None
        } else {
            Some(p.host_ip.parse().map_err(|_| {
                EngineError::Invalid(format!(
                    "invalid host ip {:?} provided for port {}",
                    p.host_ip, p.host_port
                ))
            })?)
        };
        // c/common may send a comma list of protocols; one mapping each.
        for proto in p.protocol.split(',').filter(|s| !s.is_empty()) {
            ports.push(PortSpec::Table(PortTable {
                host_ip,
                host_port: Some(p.host_port),
                container_port: p.container_port,
                range: p.range.max(1),
                protocol: proto
                    .parse()
                    .map_err(|_| EngineError::Invalid(format!("unknown protocol {proto:?}")))?,
            }));
        }
    }
    state.containers.insert(
        name.to_owned(),
        ContainerSpec {
            netns: NetnsSpec::Path(netns.to_path_buf()),
            mode: ContainerMode::Bridge,
            hostname: opts.container_hostname.clone(),
            id: Some(opts.container_id.clone()),
            networks: attachments,
            ports,
            // The container's upstreams in aardvark-dns (`podman run --dns`).
            dns_servers: opts.dns_servers.clone().unwrap_or_default(),
            ..ContainerSpec::default()
        },
    );
    check_unmanaged_ports(&state, &state.containers[name])?;
    let checked = netctl_validate::validate_state("netavark request", &state);
    if checked.has_errors() {
        return Err(EngineError::Invalid(format!(
            "invalid request: {}",
            checked.summary()
        )));
    }
    let wanted = state.networks.keys().cloned().collect();
    let mut valid = checked.state.expect("no errors, so a state").desired;
    // The validator checks the request as the text of a file, where a bridge's mode is not a
    // key (only podman's protocol has it): carry it over.
    for (name, net) in &mut valid.networks {
        net.bridge_mode = state.networks[name].bridge_mode;
    }
    Ok((valid, wanted))
}

/// netavark `setup NSPATH`: attaches the container to the requested networks and returns one
/// status block per network.
///
/// podman is the source of truth for what it sends: the setup converges to the request, not to
/// the records. A record of the same container name with another id (`podman run --replace`),
/// another namespace (a restarted container), or whose namespace is gone or of an earlier boot
/// (a crash or reboot that skipped the teardown) is replaced; a network podman re-created under
/// the same name (a new id) takes its new definition; a stale container still holding an
/// address podman now gives out is dropped. The requested container and networks are observed
/// for real, so what a reboot took away is re-created.
pub(crate) fn setup(
    engine: &Engine<'_>,
    netns: &Path,
    opts: &NetworkOptions,
) -> Result<BTreeMap<String, StatusBlock>> {
    let name = container_name(opts);
    let (mut request, wanted) = requested_state(netns, opts, &name)?;
    serve_dns(engine, &mut request);
    let started = std::time::Instant::now();
    let requested = request
        .containers
        .remove(&name)
        .expect("the request holds its container");
    let stale = stale_containers(engine, &name, &request, &requested)?;
    let scope: Vec<&String> = std::iter::once(&name).chain(&stale).collect();
    let rec = crate::observe::recorded_for(engine.store, scope.iter().copied())?;
    tracing::debug!(elapsed = ?started.elapsed(), "setup: records read");
    let mut desired = desired_from_recorded(&rec, &BTreeSet::new());
    for ctr in &stale {
        desired.containers.remove(ctr);
    }
    for (net_name, spec) in std::mem::take(&mut request.networks) {
        // A recorded network keeps its record (podman does not change a network in place),
        // unless podman's id for it changed: then it was removed and created again.
        match desired.networks.get_mut(&net_name) {
            Some(recorded) if recorded.id == spec.id => {
                // Except its DNS: whether it is served (aardvark-dns may have come or gone)
                // and its servers (`netavark update` of podman 5 changes them) are podman's.
                recorded.dns = spec.dns;
                recorded.dns_servers = spec.dns_servers;
            }
            _ => {
                desired.networks.insert(net_name, spec);
            }
        }
    }
    if let Some(old) = rec.containers.get(&name)
        && old.netns.managed
    {
        return Err(EngineError::Invalid(format!(
            "container {} is declared to netctl with a namespace of its own; podman cannot set it up",
            Shown(&name)
        )));
    }
    let replaced = rec
        .containers
        .get(&name)
        .is_some_and(|old| !is_current(engine, old, netns, &opts.container_id));
    match desired.containers.get_mut(&name) {
        Some(spec) if !replaced => {
            spec.networks.extend(requested.networks);
            spec.ports = requested.ports;
            spec.dns_servers = requested.dns_servers;
        }
        _ => {
            desired.containers.insert(name.clone(), requested);
        }
    }
    let observed = crate::observe::touched(engine, &rec, &[name.as_str()], &wanted)?;
    // Pruning drops the stale containers taken out above, and nothing else: the records read
    // hold no other container, and every recorded network is desired.
    let mut plan = netctl_plan::plan(&desired, &rec, &observed, &engine.cfg.defaults, true);
    plan.steps
        .retain(|s| keep_step(&s.resource, &scope, &wanted));
    plan.drift.clear();
    tracing::debug!(elapsed = ?started.elapsed(), "setup: planned");
    execute(engine, plan, rec, None, Verify::Touched)?;
    tracing::debug!(elapsed = ?started.elapsed(), "setup: executed and verified");
    status_blocks(engine, &name, &wanted)
}

/// Decides which of the request's DNS networks are served, as netavark does: all of them when
/// aardvark-dns is there (`--aardvark-binary`), none (with a warning) when it is not, so
/// podman then gives the container the host's servers instead of a gateway where nothing
/// answers. `NETAVARK_DNS_PORT` other than 53 is served as netavark does: aardvark-dns listens
/// there and the firewall DNATs the gateway's port 53 to it.
fn serve_dns(engine: &Engine<'_>, request: &mut DesiredState) {
    let available = engine.cfg.aardvark_binary.is_some();
    for (name, net) in &mut request.networks {
        if net.dns != Some(true) {
            continue;
        }
        if !available {
            tracing::warn!(
                "network {name}: dns is enabled, but there is no aardvark-dns (--aardvark-binary): the network serves no DNS"
            );
            net.dns = Some(false);
        }
    }
}

/// netavark `update NETWORK --network-dns-servers ...`: a podman network's upstream servers
/// (line 1 of its aardvark-dns file), then one `SIGHUP`. A network netctl has not recorded
/// has no file to change (podman sends its servers with the next setup).
pub(crate) fn update(engine: &Engine<'_>, network: &str, servers: &[IpAddr]) -> Result<()> {
    let Some(mut net) = engine.store.read()?.network(network)? else {
        return Ok(());
    };
    if !net.labels.contains_key(PODMAN_LABEL) {
        return Err(EngineError::Invalid(format!(
            "network {network} is declared to netctl, not podman's: change its dns_servers where it is declared"
        )));
    }
    if let Some(server) = servers
        .iter()
        .find(|s| crate::dns::gateways(&net).any(|gw| gw == **s))
    {
        return Err(EngineError::Invalid(format!(
            "network {network}: DNS server {server} is this network's own gateway, where its DNS server listens: a DNS loop"
        )));
    }
    if net.dns_servers == servers {
        return Ok(());
    }
    net.dns_servers = servers.to_vec();
    engine.store.write(|tx| tx.put_network(&net))?;
    crate::dns::sync(engine)
}

/// Adds a request (its networks, and its one container `name` with the attachments and ports
/// it asks for) to the recorded desired state, then plans and executes only the steps of that
/// container and the `wanted` networks: CNI's ADD (a runtime's own container, named by
/// `CNI_CONTAINERID`, so none of setup's podman-specific replacement rules apply).
pub(crate) fn attach_requested(
    engine: &Engine<'_>,
    rec: netctl_plan::Recorded,
    mut desired: DesiredState,
    request: &mut DesiredState,
    name: &str,
    wanted: &BTreeSet<String>,
) -> Result<()> {
    for (net_name, spec) in std::mem::take(&mut request.networks) {
        // A recorded network keeps its record (a runtime does not change a network in place).
        desired.networks.entry(net_name).or_insert(spec);
    }
    let requested = request
        .containers
        .remove(name)
        .expect("the request holds its container");
    let spec = desired
        .containers
        .entry(name.to_owned())
        .or_insert_with(|| ContainerSpec {
            networks: IndexMap::new(),
            ports: Vec::new(),
            ..requested.clone()
        });
    spec.networks.extend(requested.networks);
    spec.ports = requested.ports;
    let observed = crate::observe::assumed(engine, &rec)?;
    let mut plan = netctl_plan::plan(&desired, &rec, &observed, &engine.cfg.defaults, false);
    let me = name.to_owned();
    plan.steps
        .retain(|s| keep_step(&s.resource, &[&me], wanted));
    plan.drift.clear();
    execute(engine, plan, rec, None, Verify::Touched)?;
    Ok(())
}

/// Whether the record `old` of the requested container still describes it: the same id and
/// namespace, which is still there and was set up in this boot.
fn is_current(
    engine: &Engine<'_>,
    old: &netctl_state::ContainerRecord,
    netns: &Path,
    id: &str,
) -> bool {
    old.id == id && old.netns.path == netns && !is_stale(engine, old)
}

/// A record whose kernel objects are gone: of an earlier boot, or its namespace is no longer
/// one. Only podman's kind of container (a namespace netctl does not manage) is judged so; a
/// declared container's namespace is netctl's own and `apply` re-creates it.
fn is_stale(engine: &Engine<'_>, ctr: &netctl_state::ContainerRecord) -> bool {
    !ctr.netns.managed
        && (engine.of_earlier_boot(ctr) || !engine.sys.is_netns(&ctr.netns.path).unwrap_or(true))
}

/// Other containers' records the request shows to be stale, to be dropped with it: the holder
/// of an address podman now gives out, and the containers left on a network podman created
/// again under the same name. A live holder is refused here, before anything changes.
fn stale_containers(
    engine: &Engine<'_>,
    name: &str,
    request: &DesiredState,
    requested: &ContainerSpec,
) -> Result<Vec<String>> {
    let read = engine.store.read()?;
    let mut holders = BTreeSet::new();
    for (net_name, att) in &requested.networks {
        let Some(net) = read.network(net_name)? else {
            continue;
        };
        let recreated = request
            .networks
            .get(net_name)
            .is_some_and(|spec| spec.id.as_deref() != Some(net.id.as_str()));
        if recreated {
            for other in read.network_attachments(net_name)? {
                if other.container != name {
                    holders.insert((other.container, net_name.clone(), None));
                }
            }
            continue;
        }
        for ip in att
            .ip
            .map(IpAddr::V4)
            .into_iter()
            .chain(att.ip6.map(IpAddr::V6))
        {
            let Some(subnet) = net.subnet_of(ip) else {
                continue;
            };
            if let Some(holder) = read.lease_holder(net_name, &subnet.subnet, ip)?
                && holder != name
            {
                holders.insert((holder, net_name.clone(), Some(ip)));
            }
        }
    }
    let mut stale = Vec::new();
    for (holder, net_name, ip) in holders {
        let Some(ctr) = read.container(&holder)? else {
            continue;
        };
        if !is_stale(engine, &ctr) {
            return Err(EngineError::Invalid(match ip {
                Some(ip) => format!(
                    "requested ip address {ip} is already allocated to container {} on network {net_name}",
                    Shown(&holder)
                ),
                None => format!(
                    "network {net_name} was created again with a new id, but container {} still uses the old one",
                    Shown(&holder)
                ),
            }));
        }
        if !stale.contains(&holder) {
            stale.push(holder);
        }
    }
    Ok(stale)
}

/// The status podman expects, from the records.
fn status_blocks(
    engine: &Engine<'_>,
    container: &str,
    networks: &BTreeSet<String>,
) -> Result<BTreeMap<String, StatusBlock>> {
    let read = engine.store.read()?;
    let mut out = BTreeMap::new();
    for net_name in networks {
        let net = read
            .network(net_name)?
            .ok_or_else(|| EngineError::Invalid(format!("network {net_name} is not recorded")))?;
        let att = read.attachment(container, net_name)?.ok_or_else(|| {
            EngineError::Invalid(format!("{container} is not attached to {net_name}"))
        })?;
        let subnets = att
            .addresses
            .iter()
            .map(|a| NetAddress {
                ipnet: *a,
                gateway: net
                    .subnets
                    .iter()
                    .find(|s| s.subnet.contains(&a.addr()))
                    .and_then(|s| s.gateway),
            })
            .collect();
        let mut interfaces = BTreeMap::new();
        interfaces.insert(
            att.interface.clone(),
            NetInterface {
                subnets,
                mac_address: MacAddr::from(att.mac.octets()),
            },
        );
        // Only a server really listening is handed out: podman writes these into the
        // container's resolv.conf.
        let dns_server_ips = if crate::dns::serves(engine, &net) {
            crate::dns::bound_gateways(engine, &net)?
        } else {
            Vec::new()
        };
        let dns_search_domains = if dns_server_ips.is_empty() {
            Vec::new()
        } else {
            vec![netctl_dns::aardvark::SEARCH_DOMAIN.to_owned()]
        };
        out.insert(
            net_name.clone(),
            StatusBlock {
                interfaces,
                dns_server_ips: Some(dns_server_ips),
                dns_search_domains: Some(dns_search_domains),
            },
        );
    }
    Ok(out)
}

/// netavark `teardown NSPATH`: detaches the container from the requested networks; when none
/// is left, the container is forgotten. Works when the namespace is already gone.
pub(crate) fn teardown(engine: &Engine<'_>, opts: &NetworkOptions) -> Result<()> {
    // By name first (a keyed lookup), by id only if that fails (a scan).
    let read = engine.store.read()?;
    let by_name = read
        .container(&opts.container_name)?
        .filter(|c| c.id == opts.container_id);
    let found = match by_name {
        Some(ctr) => Some(ctr),
        None => read.find_container(&opts.container_id).ok(),
    };
    drop(read);
    let Some(ctr) = found else {
        // Nothing recorded: nothing of ours to take down (podman may retry a teardown).
        return Ok(());
    };
    let rec = crate::observe::recorded_for(engine.store, [&ctr.name])?;
    let wanted: BTreeSet<String> = opts.networks.names().map(ToOwned::to_owned).collect();
    let mut desired = desired_from_recorded(&rec, &BTreeSet::new());
    let spec = desired
        .containers
        .get_mut(&ctr.name)
        .expect("recorded container is desired");
    spec.networks.retain(|n, _| !wanted.contains(n));
    if spec.networks.is_empty() {
        desired.containers.remove(&ctr.name);
    }
    // Networks podman brought that are left without containers go too (netavark's "complete
    // teardown" of a network when its last container leaves).
    let mut dropped = BTreeSet::new();
    for name in &wanted {
        let podman_made = rec
            .networks
            .get(name)
            .is_some_and(|n| n.labels.contains_key(PODMAN_LABEL));
        // Other containers are not in this call's scope: ask the store who is attached.
        let in_use = desired
            .containers
            .values()
            .any(|c| c.networks.contains_key(name))
            || engine
                .store
                .read()?
                .network_attachments(name)?
                .iter()
                .any(|a| a.container != ctr.name);
        if podman_made && !in_use {
            desired.networks.remove(name);
            dropped.insert(name.clone());
        }
    }
    let observed = crate::observe::assumed(engine, &rec)?;
    let mut plan = netctl_plan::plan(&desired, &rec, &observed, &engine.cfg.defaults, true);
    plan.steps.retain(|s| match &s.resource {
        Resource::Container { name } => *name == ctr.name,
        Resource::Attachment { container, network } => {
            *container == ctr.name && wanted.contains(network)
        }
        Resource::Network { name } => dropped.contains(name),
        Resource::Firewall => false,
    });
    plan.drift.clear();
    execute(engine, plan, rec, None, Verify::Touched)?;
    Ok(())
}

/// netavark `create` (podman 5): checks a new network and completes it the way netavark does,
/// with netavark's error wording: a free bridge name (`podman1`, ...) and a free IPv4 subnet
/// from podman's pools when none is given (avoiding other networks' subnets, and the host's
/// when asked), a random ULA /64 for IPv6 without a subnet, gateways, `host-local` IPAM. The
/// completed network must pass what `setup` checks, so podman never stores a network netctl
/// would refuse. Changes nothing.
pub(crate) fn create(engine: &Engine<'_>, req: &NetworkCreateConfig) -> Result<Network> {
    let invalid = |m: String| Err(EngineError::Invalid(m));
    let mut net = req.network.clone();
    if net.name.is_empty() {
        return invalid("Network name must be supplied".into());
    }
    if !netctl_types::is_valid_name(&net.name) {
        return invalid(format!(
            "Invalid characters in network name {:?}: must match {}",
            net.name,
            netctl_types::NAME_PATTERN
        ));
    }
    if req.used.names.contains_key(&net.name) {
        return invalid(format!("network already exists {}", net.name));
    }
    if net.id.len() != 64 || !net.id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return invalid(format!(
            "Network id must be a hexadecimal string of 64 characters {:?}",
            net.id
        ));
    }
    if net.driver != "bridge" {
        return invalid(format!(
            "network {}: driver {:?} is not supported (only bridge)",
            net.name, net.driver
        ));
    }
    // A borrowed bridge may be shared (netavark skips the bridge-name check for it), may hold
    // an address of the network's subnet (so the host's subnets are not looked at), and must
    // be named: there is nothing to choose a free name for.
    let unmanaged = check_options(&net)? == BridgeMode::Unmanaged;
    let used = &req.used;
    match &net.network_interface {
        Some(bridge) if used.interfaces.contains(bridge) && !unmanaged => {
            return invalid(format!("bridge name {bridge} already in use"));
        }
        Some(_) => {}
        None if unmanaged => {
            return invalid(format!(
                "network {}: in unmanaged mode, the bridge must already exist on the host: name it (--interface-name)",
                net.name
            ));
        }
        None => {
            let stem = req
                .options
                .default_interface_name
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or("podman");
            // n names in use leave one of stem0..=stemn free.
            net.network_interface = (0..=used.interfaces.len())
                .map(|n| format!("{stem}{n}"))
                .find(|name| !used.interfaces.contains(name));
        }
    }
    let mut taken = used.subnets.clone();
    if req.options.check_used_subnets && !unmanaged {
        let host = engine
            .sys
            .addrs(&netctl_sys::NsRef::Host)
            .map_err(crate::exec::sys_err("list the host's addresses"))?;
        taken.extend(host.iter().map(|a| a.net.trunc()));
    }
    for s in &net.subnets {
        if used
            .subnets
            .iter()
            .any(|u| netctl_state::overlaps(u, &s.subnet))
        {
            return invalid(format!(
                "subnet {} is already used on the host or by another config",
                s.subnet
            ));
        }
    }
    let ipam_none = net.ipam_options.get("driver").map(String::as_str) == Some("none");
    if ipam_none {
        if !net.subnets.is_empty() {
            return invalid("None ipam driver is set but subnets are given".into());
        }
        // No addresses, so no name service either (netavark turns DNS off the same way).
        net.dns_enabled = false;
        let mut state = DesiredState::default();
        state.networks.insert(net.name.clone(), network_spec(&net)?);
        let checked = netctl_validate::validate_state("netavark create", &state);
        if checked.has_errors() {
            return invalid(format!("invalid network: {}", checked.summary()));
        }
        return Ok(net);
    }
    if net.subnets.is_empty() {
        let free = req
            .options
            .subnet_pools
            .iter()
            .filter(|pool| pool.base.addr().is_ipv4())
            .flat_map(|pool| pool.base.subnets(pool.size).into_iter().flatten())
            .find(|candidate| !taken.iter().any(|t| netctl_state::overlaps(t, candidate)));
        let Some(free) = free else {
            return invalid("could not find free subnet from subnet pools".into());
        };
        net.subnets.push(Subnet {
            subnet: free,
            gateway: None,
            lease_range: None,
        });
    }
    if net.ipv6_enabled && !net.subnets.iter().any(|s| s.subnet.addr().is_ipv6()) {
        let ula = netctl_state::random_ula(&taken, &mut rand::rng())
            .map_err(|e| EngineError::Invalid(format!("failed to get random ipv6 subnet: {e}")))?;
        net.subnets.push(Subnet {
            subnet: IpNet::V6(ula),
            gateway: None,
            lease_range: None,
        });
    }
    if !net.internal || net.dns_enabled {
        for s in &mut net.subnets {
            s.subnet = s.subnet.trunc();
            s.gateway = s
                .gateway
                .or_else(|| Some(netctl_types::first_host(s.subnet)));
        }
    }
    net.ipv6_enabled |= net.subnets.iter().any(|s| s.subnet.addr().is_ipv6());
    net.ipam_options
        .insert("driver".to_owned(), "host-local".to_owned());
    // What setup will check, checked now.
    let mut state = DesiredState::default();
    state.networks.insert(net.name.clone(), network_spec(&net)?);
    let checked = netctl_validate::validate_state("netavark create", &state);
    if checked.has_errors() {
        return invalid(format!("invalid network: {}", checked.summary()));
    }
    Ok(net)
}

//! A container's hosts and resolv.conf, composed from the records with podman's rules.
//!
//! For a managed namespace the files live in `<etc_netns_dir>/<name>/`, so `ip netns exec NAME`
//! bind-mounts them over /etc/hosts and /etc/resolv.conf; for a namespace given by path they
//! live in `<run_dir>/containers/<name>/`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use netctl_dns::hosts::{self, HostsParams};
use netctl_dns::resolv::{self, ResolvParams};
use netctl_plan::Recorded;
use netctl_state::{ContainerRecord, NetworkMode};
use netctl_types::ContainerSpec;

use crate::{Config, Result};

/// The directories a run writes under, checked before it changes anything.
///
/// * `run_dir` is netctl's own (pid files, sockets, helpers' files, the files of containers in
///   namespaces netctl does not manage): created 0755; one of another user's is refused; one
///   that others may write to is tightened to 0755, with a warning, since anyone who can
///   write there could plant a link for a root process to write through.
/// * `etc_netns_dir` and `netns_dir` are shared with iproute2: a warning if others may write
///   them. netctl still writes only through opens that follow no link, into per-container
///   directories of its own (see `netctl_dns::file`).
pub(crate) fn check_dirs(cfg: &Config) -> Result<()> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let invalid = |what: String| crate::EngineError::Invalid(what);
    let run_dir = &cfg.run_dir;
    if !run_dir.exists() {
        std::fs::create_dir_all(run_dir)
            .and_then(|()| {
                std::fs::set_permissions(run_dir, std::fs::Permissions::from_mode(0o755))
            })
            .map_err(|e| invalid(format!("cannot create run_dir {}: {e}", run_dir.display())))?;
    }
    let meta = std::fs::metadata(run_dir)
        .map_err(|e| invalid(format!("cannot use run_dir {}: {e}", run_dir.display())))?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != me {
        return Err(invalid(format!(
            "refusing run_dir {}: it is not a directory of netctl's user (uid {me}; it belongs to uid {})",
            run_dir.display(),
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        tracing::warn!(
            "run_dir {} was writable by others (mode {:o}); tightened to 0755",
            run_dir.display(),
            meta.mode() & 0o7777
        );
        std::fs::set_permissions(run_dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| invalid(format!("cannot tighten run_dir {}: {e}", run_dir.display())))?;
    }
    for (setting, dir) in [
        ("etc_netns_dir", &cfg.etc_netns_dir),
        ("netns_dir", &cfg.netns_dir),
    ] {
        if let Ok(meta) = std::fs::metadata(dir)
            && meta.mode() & 0o002 != 0
        {
            tracing::warn!(
                "{setting} {} is writable by everyone (mode {:o}); netctl writes there only into directories of its own and never through links, but a directory only root can write is safer",
                dir.display(),
                meta.mode() & 0o7777
            );
        }
    }
    Ok(())
}

/// The host's hosts and resolv.conf, read once per operation (every container's files start
/// from them).
#[derive(Debug, Clone, Default)]
pub(crate) struct HostFiles {
    hosts: Option<String>,
    resolv: Option<String>,
    /// aardvark-dns is available, so DNS networks serve names (and lead resolv.conf).
    dns: bool,
}

impl HostFiles {
    pub(crate) fn read(cfg: &Config) -> HostFiles {
        HostFiles {
            hosts: std::fs::read_to_string(&cfg.host_hosts).ok(),
            resolv: read_host_resolv(&cfg.host_resolv),
            dns: cfg.aardvark_binary.is_some(),
        }
    }
}

/// Where a container's files live.
pub fn container_files_dir(cfg: &Config, ctr: &ContainerRecord) -> PathBuf {
    if ctr.netns.managed {
        cfg.etc_netns_dir.join(&ctr.name)
    } else {
        cfg.run_dir.join("containers").join(&ctr.name)
    }
}

/// The hosts and resolv.conf a container should have (podman's rules for each mode).
pub(crate) fn expected(
    host: &HostFiles,
    rec: &Recorded,
    ctr: &ContainerRecord,
) -> (String, String) {
    let spec: ContainerSpec = ctr.spec.decode().unwrap_or_default();
    match ctr.mode {
        NetworkMode::Bridge | NetworkMode::None => bridge_files(host, rec, ctr, &spec),
        NetworkMode::Pasta | NetworkMode::Slirp4netns => user_mode_files(host, ctr, &spec),
    }
}

/// pasta: no entry of its own (podman adds none; the namespace has the host's addresses);
/// slirp4netns: its fixed address (cidr+100) and DNS forwarder (cidr+3).
fn user_mode_files(
    host: &HostFiles,
    ctr: &ContainerRecord,
    spec: &ContainerSpec,
) -> (String, String) {
    let (entries, resolv_params) = if ctr.mode == NetworkMode::Slirp4netns {
        let opts = spec.slirp4netns.clone().unwrap_or_default();
        (
            netctl_slirp::hosts_entries(&opts, &ctr.hostname, &ctr.name),
            netctl_slirp::resolv_params(
                &opts,
                &spec.dns_servers,
                &spec.dns_search,
                host.resolv.clone(),
            ),
        )
    } else {
        (Vec::new(), spec_resolv(host, spec, true))
    };
    (
        hosts_file(host, spec, None, entries),
        resolv::new_resolv_conf(&resolv_params),
    )
}

/// The hosts file: the user's extra hosts, the host's own, then the container's entries.
fn hosts_file(
    host: &HostFiles,
    spec: &ContainerSpec,
    host_containers_internal: Option<IpAddr>,
    container_entries: Vec<hosts::HostEntry>,
) -> String {
    hosts::new_hosts(&HostsParams {
        extra_hosts: spec
            .extra_hosts
            .iter()
            .filter_map(|e| hosts::parse_extra_host(e).ok())
            .collect(),
        base: host.hosts.clone(),
        host_containers_internal,
        container_entries,
    })
}

/// resolv.conf from the spec's servers and search domains, the host's servers when it names
/// none.
fn spec_resolv(host: &HostFiles, spec: &ContainerSpec, ipv6: bool) -> ResolvParams {
    ResolvParams {
        host_content: host.resolv.clone(),
        nameservers: spec.dns_servers.clone(),
        searches: spec.dns_search.clone(),
        options: Vec::new(),
        keep_host_servers: spec.dns_servers.is_empty(),
        ipv6,
    }
}

fn bridge_files(
    host: &HostFiles,
    rec: &Recorded,
    ctr: &ContainerRecord,
    spec: &ContainerSpec,
) -> (String, String) {
    // In interface order (eth0 first), so the primary network comes first.
    let mut atts: Vec<_> = rec.attachments_of(&ctr.name).collect();
    atts.sort_by_key(|a| crate::fwmap::interface_order(&a.interface));
    let ips: Vec<IpAddr> = atts
        .iter()
        .flat_map(|a| a.addresses.iter().map(ipnet::IpNet::addr))
        .collect();
    let mut container_ips = ips.clone();
    if ctr.mode == NetworkMode::None {
        container_ips = vec![IpAddr::from([127, 0, 0, 1])];
    }
    // Root podman: host.containers.internal is a bridge gateway of the container's networks,
    // IPv4 preferred.
    let gateways: Vec<IpAddr> = atts
        .iter()
        .filter_map(|a| rec.networks.get(&a.network))
        .flat_map(|n| n.subnets.iter().filter_map(|s| s.gateway))
        .collect();
    let hci = gateways
        .iter()
        .find(|g| g.is_ipv4())
        .or_else(|| gateways.first())
        .copied();
    let hosts_text = hosts_file(
        host,
        spec,
        hci,
        hosts::container_entries(container_ips, &ctr.hostname, &ctr.name),
    );
    let mut params = spec_resolv(host, spec, ips.iter().any(IpAddr::is_ipv6));
    // On DNS networks (podman's rules): their gateways first, then the container's own
    // servers or the host's; `dns.podman` searched unless the container names its domains.
    let dns_gateways: Vec<IpAddr> = atts
        .iter()
        .filter_map(|a| rec.networks.get(&a.network))
        // A podman network records DNS on only while it is served (see `podman::serve_dns`);
        // a declared one serves it when this configuration has aardvark-dns.
        .filter(|n| {
            n.dns_enabled && (host.dns || n.labels.contains_key(crate::podman::PODMAN_LABEL))
        })
        .flat_map(crate::dns::gateways)
        .collect();
    if !dns_gateways.is_empty() {
        params.nameservers = dns_gateways
            .into_iter()
            .chain(spec.dns_servers.clone())
            .collect();
        if spec.dns_search.is_empty() {
            params.searches = vec![netctl_dns::aardvark::SEARCH_DOMAIN.to_owned()];
        }
    }
    let resolv_text = resolv::new_resolv_conf(&params);
    (hosts_text, resolv_text)
}

/// The host's resolv.conf, following a systemd-resolved or NetworkManager stub to the real
/// upstream list as podman does.
fn read_host_resolv(path: &Path) -> Option<String> {
    let content = std::fs::read_to_string(path).ok()?;
    match resolv::upstream_source(&content) {
        Some(upstream) => std::fs::read_to_string(upstream).ok().or(Some(content)),
        None => Some(content),
    }
}

/// Whether a container's files exist with the content netctl would write.
pub(crate) fn files_match(
    cfg: &Config,
    host: &HostFiles,
    rec: &Recorded,
    ctr: &ContainerRecord,
) -> bool {
    let (hosts_text, resolv_text) = expected(host, rec, ctr);
    let dir = container_files_dir(cfg, ctr);
    netctl_dns::files_are(
        &dir,
        &[("hosts", &hosts_text), ("resolv.conf", &resolv_text)],
    )
}

/// Brings a container's files up to date (in place, keeping inodes).
///
/// A file that is exactly what netctl last wrote (the template of `before`), or that is
/// missing, or when `full` is asked (a repair), is rewritten whole. A file someone edited is
/// edited the way podman does on connect and disconnect: the container's own lines for
/// addresses it no longer has are removed, lines for new addresses are added next to the old
/// ones, and every other line stays as the user left it.
pub(crate) fn sync(
    cfg: &Config,
    host: &HostFiles,
    before: &Recorded,
    now: &Recorded,
    ctr: &ContainerRecord,
    full: bool,
) -> Result<Sync> {
    let (hosts_text, resolv_text) = expected(host, now, ctr);
    let dir = container_files_dir(cfg, ctr);
    let hosts_path = dir.join("hosts");
    let current = netctl_dns::read_file(&hosts_path);
    let template_before = before
        .containers
        .get(&ctr.name)
        .map(|old| expected(host, before, old).0);
    let pristine = current.is_none() || current == template_before;
    let how = if full || pristine {
        Sync::Written
    } else {
        Sync::Edited
    };
    if how == Sync::Written {
        netctl_dns::write_file(&hosts_path, &hosts_text)?;
    } else {
        let old_ips = container_ips(before, &ctr.name);
        let new_ips = container_ips(now, &ctr.name);
        let gone: Vec<IpAddr> = old_ips
            .iter()
            .filter(|ip| !new_ips.contains(ip))
            .copied()
            .collect();
        let added: Vec<IpAddr> = new_ips
            .iter()
            .filter(|ip| !old_ips.contains(ip))
            .copied()
            .collect();
        let old_entries =
            hosts::container_entries(old_ips.iter().copied(), &ctr.hostname, &ctr.name);
        if !gone.is_empty() {
            hosts::remove(
                &hosts_path,
                &hosts::container_entries(gone, &ctr.hostname, &ctr.name),
            )?;
        }
        if !added.is_empty() {
            hosts::add_if_exists(
                &hosts_path,
                &old_entries,
                &hosts::container_entries(added, &ctr.hostname, &ctr.name),
            )?;
        }
    }
    netctl_dns::write_file(&dir.join("resolv.conf"), &resolv_text)?;
    Ok(how)
}

/// How [`sync`] brought a hosts file up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sync {
    /// Rewritten whole from the template.
    Written,
    /// Edited in place around the user's own lines (so it differs from the template).
    Edited,
}

/// The addresses a container has on all its networks, as recorded.
fn container_ips(rec: &Recorded, name: &str) -> Vec<IpAddr> {
    rec.attachments_of(name)
        .flat_map(|a| a.addresses.iter().map(ipnet::IpNet::addr))
        .collect()
}

/// Removes a container's files and their directory; missing ones are fine, and nothing is
/// removed through a symbolic link.
pub(crate) fn remove(cfg: &Config, ctr: &ContainerRecord) -> Result<()> {
    let dir = container_files_dir(cfg, ctr);
    netctl_dns::remove_files(&dir, &["hosts", "resolv.conf"])?;
    // What a stopped pasta or slirp4netns left under run_dir (pid file, socket, log), and
    // with them the container's directory there.
    let helper_dir = netctl_slirp::files_dir(&cfg.run_dir, &ctr.name);
    let [socket, log] = netctl_slirp::FILES;
    let helper_files = [netctl_pasta::PID_FILE, socket, log, "hosts", "resolv.conf"];
    netctl_dns::remove_files(&helper_dir, &helper_files)?;
    Ok(())
}

//! Environment + stdin → [`Request`], refusing what netctl cannot honour with the spec's codes.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;

use netctl_types::{MacAddr, NetworkSpec, PortTable, Protocol};
use serde_json::{Map, Value};

use crate::render::AddResult;
use crate::{CniError, Version, code};

/// The operation the runtime asks for (`CNI_COMMAND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Gc,
    Status,
    Version,
}

/// `CNI_COMMAND=VERSION`'s spelling, for callers that answer it before reading anything else.
pub const VERSION_COMMAND: &str = "VERSION";

impl Command {
    /// `CNI_COMMAND` read from the environment; missing or unknown is code 4.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Command, CniError> {
        let text = env("CNI_COMMAND").unwrap_or_default();
        Ok(match text.as_str() {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            VERSION_COMMAND => Command::Version,
            "" => return Err(CniError::new(code::INVALID_ENV, "CNI_COMMAND is not set")),
            other => {
                return Err(CniError::new(
                    code::INVALID_ENV,
                    format!(
                        "CNI_COMMAND {other:?} is not one of ADD, DEL, CHECK, GC, STATUS, VERSION"
                    ),
                ));
            }
        })
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Gc => "GC",
            Command::Status => "STATUS",
            Command::Version => VERSION_COMMAND,
        }
    }

    /// GC and STATUS came with spec 1.1.0.
    const fn since(self) -> Version {
        match self {
            Command::Gc | Command::Status => Version::V1_1_0,
            _ => Version::V0_4_0,
        }
    }
}

/// Which network the plugin config names (the plugin key `network`).
// One per plugin call, read once: boxing the inline spec would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkRef {
    /// A network netctl has recorded (declared in a TOML file, or by an earlier inline ADD).
    /// The conflist's `name` when the key is absent.
    Named(String),
    /// An inline definition, recorded under the conflist's `name` on first use.
    Inline {
        spec: NetworkSpec,
        /// The keys the definition gave, sorted: a later ADD compares only these with the record.
        keys: BTreeSet<String>,
    },
}

/// What the runtime passes through `runtimeConfig` (the capabilities netctl declares).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuntimeConfig {
    /// `portMappings`.
    pub ports: Vec<PortTable>,
    /// `ips`: static addresses (their prefix lengths are the subnet's business, not the caller's).
    pub ips: Vec<IpAddr>,
    /// `mac`.
    pub mac: Option<MacAddr>,
    /// `aliases`.
    pub aliases: Vec<String>,
}

/// `CNI_ARGS`, the deprecated `K=V;K=V` channel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CniArgs {
    /// `IP=a[,b]`: static addresses, as the `ips` capability.
    pub ips: Vec<IpAddr>,
    /// `K8S_POD_NAME`, used as the hostname when it is one.
    pub pod_name: Option<String>,
}

/// One `(containerID, ifname)` of GC's `cni.dev/valid-attachments`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attachment {
    pub container_id: String,
    pub ifname: String,
}

/// A parsed and checked plugin invocation (every command but VERSION).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub command: Command,
    pub version: Version,
    /// The conflist's `name`.
    pub name: String,
    /// `CNI_CONTAINERID` (empty for GC and STATUS).
    pub container_id: String,
    /// `CNI_IFNAME` (empty for GC and STATUS).
    pub ifname: String,
    /// `CNI_NETNS`; `None` when absent or empty (DEL may come so).
    pub netns: Option<PathBuf>,
    pub args: CniArgs,
    pub network: NetworkRef,
    pub runtime: RuntimeConfig,
    /// CHECK's `prevResult` (required there); DEL's is not needed, netctl's records are the
    /// truth.
    pub prev_result: Option<AddResult>,
    /// GC's `cni.dev/valid-attachments`.
    pub valid_attachments: Vec<Attachment>,
}

impl Request {
    /// The static addresses asked for, from `runtimeConfig.ips` and `CNI_ARGS` `IP=`.
    pub fn static_ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.runtime.ips.iter().chain(&self.args.ips).copied()
    }
}

/// The plugin-config keys netctl reads or that runtimes insert; any other is refused (code 2).
const KNOWN_KEYS: [&str; 11] = [
    "cniVersion",
    "name",
    "type",
    "network",
    "capabilities",
    "runtimeConfig",
    "prevResult",
    "args",
    "cni.dev/valid-attachments",
    "disableCheck",
    "disableGC",
];

/// The keys of an inline `network` object.
const NETWORK_KEYS: [&str; 7] = [
    "bridge", "dns", "internal", "ipv6", "isolate", "mtu", "subnets",
];

/// A refused request: the error and the `cniVersion` to answer it with (the request's when it
/// named one, else the newest netctl speaks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub cni_version: String,
    pub error: CniError,
}

/// Reads one invocation: `command` (from [`Command::from_env`], not VERSION), the rest of the
/// environment through `env`, and the network configuration on stdin.
pub fn parse(
    command: Command,
    env: &dyn Fn(&str) -> Option<String>,
    stdin: &[u8],
) -> Result<Request, Refused> {
    let mut cni_version = Version::LATEST.as_str().to_owned();
    let refuse = |cni_version: &str, error: CniError| Refused {
        cni_version: cni_version.to_owned(),
        error,
    };
    let conf: Map<String, Value> = serde_json::from_slice(stdin).map_err(|e| {
        refuse(
            &cni_version,
            CniError::new(code::DECODE, "cannot decode the network configuration")
                .with_details(e.to_string()),
        )
    })?;
    let version = match conf.get("cniVersion") {
        Some(Value::String(text)) => {
            cni_version.clone_from(text);
            Version::parse(text).ok_or_else(|| {
                refuse(
                    &cni_version,
                    CniError::new(
                        code::INCOMPATIBLE_VERSION,
                        format!(
                            "cniVersion {text:?} is not supported; netctl supports {}",
                            supported()
                        ),
                    ),
                )
            })?
        }
        Some(_) => {
            return Err(refuse(
                &cni_version,
                CniError::new(code::DECODE, "cniVersion is not a string"),
            ));
        }
        None => {
            return Err(refuse(
                &cni_version,
                CniError::new(code::INVALID_CONFIG, "cniVersion is missing"),
            ));
        }
    };
    parse_config(command, version, env, &conf).map_err(|error| refuse(&cni_version, error))
}

fn supported() -> String {
    Version::ALL.map(Version::as_str).join(", ")
}

fn parse_config(
    command: Command,
    version: Version,
    env: &dyn Fn(&str) -> Option<String>,
    conf: &Map<String, Value>,
) -> Result<Request, CniError> {
    if version < command.since() {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "{} needs cniVersion {} or later; the configuration says {version}",
                command.as_str(),
                command.since()
            ),
        ));
    }
    for key in conf.keys() {
        if key == "ipam" {
            return Err(CniError::new(
                code::UNSUPPORTED_FIELD,
                "key ipam is not supported: netctl allocates addresses itself (give subnets in \
                 the network definition)",
            ));
        }
        if !KNOWN_KEYS.contains(&key.as_str()) {
            return Err(CniError::new(
                code::UNSUPPORTED_FIELD,
                format!("key {key} is not supported by the netctl plugin"),
            ));
        }
    }
    let name = match conf.get("name") {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        _ => return Err(CniError::new(code::INVALID_CONFIG, "name is missing")),
    };
    if let Some(args) = conf.get("args")
        && !is_empty(args)
    {
        return Err(CniError::new(
            code::UNSUPPORTED_FIELD,
            format!("key args is not supported (value {args}); use runtimeConfig capabilities"),
        ));
    }
    let (container_id, ifname, netns) = environment(command, env)?;
    let args = match command {
        Command::Add | Command::Check | Command::Del => cni_args(env)?,
        _ => CniArgs::default(),
    };
    let prev_result = match (command, conf.get("prevResult")) {
        (Command::Add, Some(prev)) if !prev.is_null() => {
            return Err(CniError::new(
                code::UNSUPPORTED_FIELD,
                "key prevResult is not supported on ADD: netctl creates the interface, so it \
                 must be the first plugin of the list",
            ));
        }
        (Command::Check, None | Some(Value::Null)) => {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                "prevResult is missing: CHECK compares the result of ADD",
            ));
        }
        (Command::Check, Some(prev)) => Some(
            serde_json::from_value::<AddResult>(prev.clone()).map_err(|e| {
                CniError::new(code::DECODE, "cannot decode prevResult").with_details(e.to_string())
            })?,
        ),
        // DEL works from netctl's records; a cached result adds nothing.
        _ => None,
    };
    let runtime = match conf.get("runtimeConfig") {
        Some(rc) if command == Command::Add => runtime_config(rc)?,
        _ => RuntimeConfig::default(),
    };
    let valid_attachments = match conf.get("cni.dev/valid-attachments") {
        Some(list) if command == Command::Gc => valid_attachments(list)?,
        _ => Vec::new(),
    };
    Ok(Request {
        command,
        version,
        network: network_ref(&name, conf.get("network"))?,
        name,
        container_id,
        ifname,
        netns,
        args,
        runtime,
        prev_result,
        valid_attachments,
    })
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.values().all(is_empty),
        Value::Array(list) => list.is_empty(),
        _ => false,
    }
}

/// `CNI_CONTAINERID`, `CNI_IFNAME` and `CNI_NETNS`, required as the spec says per command.
fn environment(
    command: Command,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, String, Option<PathBuf>), CniError> {
    if matches!(command, Command::Gc | Command::Status | Command::Version) {
        return Ok((String::new(), String::new(), None));
    }
    let required = |var: &str| {
        env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
            CniError::new(
                code::INVALID_ENV,
                format!("{var} is not set (required for {})", command.as_str()),
            )
        })
    };
    let container_id = required("CNI_CONTAINERID")?;
    netctl_types::check_name(&container_id).map_err(|e| {
        CniError::new(
            code::INVALID_ENV,
            format!("CNI_CONTAINERID {container_id:?} is not a valid container id: {e}"),
        )
    })?;
    let ifname = required("CNI_IFNAME")?;
    netctl_types::check_created_interface_name(&ifname).map_err(|e| {
        CniError::new(
            code::INVALID_ENV,
            format!("CNI_IFNAME {ifname:?} is not a valid interface name: {e}"),
        )
    })?;
    let netns = match command {
        Command::Del => env("CNI_NETNS").filter(|v| !v.is_empty()),
        _ => Some(required("CNI_NETNS")?),
    };
    if let Some(path) = &netns
        && !path.starts_with('/')
    {
        return Err(CniError::new(
            code::INVALID_ENV,
            format!("CNI_NETNS {path:?} is not an absolute path"),
        ));
    }
    Ok((container_id, ifname, netns.map(PathBuf::from)))
}

/// `CNI_ARGS`: `K=V` pairs separated by `;`. Unknown keys are refused unless
/// `IgnoreUnknown=1` (or `true`) is among them, as the reference plugins do.
fn cni_args(env: &dyn Fn(&str) -> Option<String>) -> Result<CniArgs, CniError> {
    let text = env("CNI_ARGS").unwrap_or_default();
    let mut pairs = Vec::new();
    for pair in text.split(';').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            CniError::new(
                code::INVALID_ENV,
                format!("CNI_ARGS: {pair:?} is not KEY=VALUE"),
            )
        })?;
        pairs.push((key, value));
    }
    let ignore_unknown = pairs
        .iter()
        .any(|(k, v)| *k == "IgnoreUnknown" && matches!(*v, "1" | "true" | "True"));
    let mut args = CniArgs::default();
    for (key, value) in pairs {
        match key {
            "IP" => {
                for ip in value.split(',').filter(|s| !s.is_empty()) {
                    args.ips.push(ip.parse().map_err(|_| {
                        CniError::new(
                            code::INVALID_ENV,
                            format!("CNI_ARGS: IP {ip:?} is not an address"),
                        )
                    })?);
                }
            }
            "K8S_POD_NAME" => args.pod_name = Some(value.to_owned()),
            "IgnoreUnknown"
            | "K8S_POD_NAMESPACE"
            | "K8S_POD_INFRA_CONTAINER_ID"
            | "K8S_POD_UID" => {}
            _ if ignore_unknown => {}
            _ => {
                return Err(CniError::new(
                    code::UNSUPPORTED_FIELD,
                    format!("CNI_ARGS key {key} is not supported (IgnoreUnknown=1 ignores it)"),
                ));
            }
        }
    }
    Ok(args)
}

/// One `runtimeConfig.portMappings` entry, as CONVENTIONS.md spells it.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PortMappingEntry {
    host_port: u16,
    container_port: u16,
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default, rename = "hostIP")]
    host_ip: Option<String>,
}

fn runtime_config(value: &Value) -> Result<RuntimeConfig, CniError> {
    let invalid = |key: &str, why: String| {
        CniError::new(
            code::INVALID_CONFIG,
            format!("runtimeConfig.{key} is invalid: {why}"),
        )
    };
    let Value::Object(map) = value else {
        return Err(CniError::new(
            code::DECODE,
            "runtimeConfig is not an object",
        ));
    };
    let mut rc = RuntimeConfig::default();
    for (key, value) in map {
        match key.as_str() {
            "portMappings" => {
                let entries: Vec<PortMappingEntry> = serde_json::from_value(value.clone())
                    .map_err(|e| invalid(key, e.to_string()))?;
                for e in entries {
                    if e.host_port == 0 || e.container_port == 0 {
                        return Err(invalid(key, "ports must be 1 to 65535".to_owned()));
                    }
                    let protocol: Protocol = e
                        .protocol
                        .as_deref()
                        .filter(|p| !p.is_empty())
                        .unwrap_or("tcp")
                        .parse()
                        .map_err(|err: netctl_types::ProtocolParseError| {
                            invalid(key, err.to_string())
                        })?;
                    let host_ip = match e.host_ip.as_deref() {
                        None | Some("") => None,
                        Some(ip) => Some(ip.parse().map_err(|_| {
                            invalid(key, format!("hostIP {ip:?} is not an address"))
                        })?),
                    };
                    rc.ports.push(PortTable {
                        host_ip,
                        host_port: Some(e.host_port),
                        container_port: e.container_port,
                        range: 1,
                        protocol,
                    });
                }
            }
            "ips" => {
                let list: Vec<String> = serde_json::from_value(value.clone())
                    .map_err(|e| invalid(key, e.to_string()))?;
                for text in list {
                    let addr = text.split_once('/').map_or(text.as_str(), |(a, _)| a);
                    rc.ips.push(
                        addr.parse()
                            .map_err(|_| invalid(key, format!("{text:?} is not an address")))?,
                    );
                }
            }
            "mac" => {
                let text: String = serde_json::from_value(value.clone())
                    .map_err(|e| invalid(key, e.to_string()))?;
                rc.mac = Some(text.parse().map_err(|e: netctl_types::MacParseError| {
                    invalid(key, format!("{text:?}: {e}"))
                })?);
            }
            "aliases" => {
                rc.aliases = serde_json::from_value(value.clone())
                    .map_err(|e| invalid(key, e.to_string()))?;
            }
            _ if is_empty(value) => {}
            _ => {
                return Err(CniError::new(
                    code::UNSUPPORTED_FIELD,
                    format!(
                        "capability {key} is not supported (value {value}); netctl handles \
                         portMappings, ips, mac and aliases"
                    ),
                ));
            }
        }
    }
    Ok(rc)
}

fn valid_attachments(value: &Value) -> Result<Vec<Attachment>, CniError> {
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(rename = "containerID")]
        container_id: String,
        ifname: String,
    }
    let list: Vec<Entry> = serde_json::from_value(value.clone()).map_err(|e| {
        CniError::new(code::DECODE, "cannot decode cni.dev/valid-attachments")
            .with_details(e.to_string())
    })?;
    Ok(list
        .into_iter()
        .map(|e| Attachment {
            container_id: e.container_id,
            ifname: e.ifname,
        })
        .collect())
}

fn network_ref(name: &str, value: Option<&Value>) -> Result<NetworkRef, CniError> {
    let map = match value {
        None | Some(Value::Null) => return Ok(NetworkRef::Named(name.to_owned())),
        Some(Value::String(named)) => return Ok(NetworkRef::Named(named.clone())),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!("network must be a network's name or an object, not {other}"),
            ));
        }
    };
    let mut map = map.clone();
    for key in map.keys() {
        if !NETWORK_KEYS.contains(&key.as_str()) {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!(
                    "network.{key} is not a network key; known: {}",
                    NETWORK_KEYS.join(", ")
                ),
            ));
        }
    }
    match map.remove("dns") {
        None | Some(Value::Bool(false)) => {}
        Some(value) => {
            return Err(CniError::new(
                code::UNSUPPORTED_FIELD,
                format!("network.dns {value} is not supported: CNI networks serve no DNS"),
            ));
        }
    }
    let keys = map.keys().cloned().collect();
    let mut spec: NetworkSpec = serde_json::from_value(Value::Object(map))
        .map_err(|e| CniError::new(code::INVALID_CONFIG, format!("network is invalid: {e}")))?;
    // Off, not "on when aardvark-dns is installed" as for a declared network: a CNI result
    // names no DNS server, so one would run for nobody.
    spec.dns = Some(false);
    Ok(NetworkRef::Inline { spec, keys })
}

//! What the plugin prints: ADD results, errors and VERSION answers, per spec version.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{CniError, Version};

/// An ADD result (and CHECK's `prevResult`), without its `cniVersion`: that is added when it is
/// rendered for the version asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AddResult {
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: Dns,
}

/// An interface the plugin made or uses: host-side ones have no `sandbox`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// An address of an interface (its index in `interfaces`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl AddResult {
    /// The result as the runtime expects it for `version`: results before 1.0.0 carry
    /// `ips[].version` ("4" or "6").
    pub fn render(&self, version: Version) -> Value {
        let mut value = serde_json::to_value(self).expect("a result serialises");
        if version < Version::V1_0_0
            && let Some(Value::Array(ips)) = value.get_mut("ips")
        {
            for (ip, cfg) in ips.iter_mut().zip(&self.ips) {
                let family = if cfg.address.addr().is_ipv4() {
                    "4"
                } else {
                    "6"
                };
                ip["version"] = json!(family);
            }
        }
        value["cniVersion"] = json!(version.as_str());
        value
    }
}

/// The spec's error object; `details` only when there are some.
pub fn render_error(cni_version: &str, error: &CniError) -> Value {
    let mut value = json!({
        "cniVersion": cni_version,
        "code": error.code,
        "msg": error.msg,
    });
    if !error.details.is_empty() {
        value["details"] = json!(error.details);
    }
    value
}

/// VERSION's answer: the version the runtime sent back (the newest netctl speaks when stdin
/// names none) and every version netctl speaks.
pub fn render_version(stdin: &[u8]) -> Value {
    let asked = serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| Version::LATEST.as_str().to_owned());
    json!({
        "cniVersion": asked,
        "supportedVersions": Version::ALL.map(Version::as_str),
    })
}

//! JSON Schema for the desired-state types whose serde forms are written by hand (feature
//! `schemars`): the derived schemas of the other types refer to these. Each schema says exactly
//! what the type's `Deserialize` (and netctl-validate) accepts, so an editor flags what netctl
//! would refuse.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use crate::desired::{Isolate, MANAGED_NETNS, NetnsSpec};
use crate::mac::MacAddr;
use crate::ports::Protocol;

impl JsonSchema for Isolate {
    fn schema_name() -> Cow<'static, str> {
        "Isolate".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // The serde form: booleans for Disabled and Enabled, a string for Strict.
        json_schema!({
            "description": "netavark's `isolate` option: false (none), true (no traffic to other isolated networks) or \"strict\" (no traffic to any other network).",
            "enum": [false, true, Isolate::Strict.option_value()],
        })
    }
}

impl JsonSchema for NetnsSpec {
    fn schema_name() -> Cow<'static, str> {
        "Netns".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "\"managed\" (netctl creates <netns_dir>/<name> and removes it on destroy) or the absolute path of an existing namespace (/run/netns/x, /proc/PID/ns/net).",
            "type": "string",
            "anyOf": [{ "const": MANAGED_NETNS }, { "pattern": "^/" }],
        })
    }
}

impl JsonSchema for MacAddr {
    fn schema_name() -> Cow<'static, str> {
        "MacAddr".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A unicast MAC address: six two-digit hex octets separated by `:` or `-`.",
            "type": "string",
            "pattern": "^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$|^[0-9A-Fa-f]{2}(-[0-9A-Fa-f]{2}){5}$",
        })
    }
}

impl JsonSchema for Protocol {
    fn schema_name() -> Cow<'static, str> {
        "Protocol".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = Protocol::ALL.iter().map(|p| p.as_str()).collect();
        json_schema!({
            "description": "Transport protocol (netctl also reads it in any letter case).",
            "type": "string",
            "enum": names,
        })
    }
}

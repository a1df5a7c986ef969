//! `netctl network inspect` and `netctl network ls`: a recorded network in podman's shapes.
//!
//! [`network_inspect`] gives c/common's `Network` (the JSON `podman network inspect` prints and
//! podman stores in `/etc/containers/networks/NAME.json`). netctl keeps `mtu` and `isolate` as
//! typed fields; podman keeps them as driver options, so they are written back into `options`
//! here. [`NetworkRow`] and [`render_network_table`] give `podman network ls`'s default table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use netctl_state::{Isolate, NetworkRecord};
use netctl_types::{LeaseRange, Network, Subnet, short_id};

/// The only IPAM driver netctl implements, under podman's name.
pub const IPAM_DRIVER: &str = "host-local";

/// A recorded network as podman's `Network`.
///
/// `options` is the recorded driver options plus `mtu` (when set) and `isolate` (when not off,
/// as `"true"` or `"strict"`); the typed fields win over a recorded option of the same key.
/// `created` is RFC 3339 in UTC with nanoseconds, trailing zeros trimmed (Go's
/// `RFC3339Nano`). `ipv6_enabled` is also true whenever a subnet is IPv6, as podman sets it.
pub fn network_inspect(net: &NetworkRecord) -> Network {
    Network {
        name: net.name.clone(),
        id: net.id.clone(),
        driver: net.driver.to_string(),
        network_interface: (!net.network_interface.is_empty())
            .then(|| net.network_interface.clone()),
        created: Some(format_rfc3339(net.created)),
        subnets: net
            .subnets
            .iter()
            .map(|s| Subnet {
                subnet: s.subnet,
                gateway: s.gateway,
                lease_range: s
                    .lease_range
                    .filter(|r| r.start.is_some() || r.end.is_some())
                    .map(|r| LeaseRange {
                        start_ip: r.start,
                        end_ip: r.end,
                    }),
            })
            .collect(),
        routes: net
            .routes
            .iter()
            .map(|r| netctl_types::Route {
                destination: r.destination,
                gateway: r.gateway,
                metric: r.metric,
                route_type: (r.route_type != "unicast").then(|| r.route_type.clone()),
            })
            .collect(),
        ipv6_enabled: net.ipv6 || net.subnets.iter().any(|s| matches!(s.subnet, IpNet::V6(_))),
        internal: net.internal,
        dns_enabled: net.dns_enabled,
        network_dns_servers: net.dns_servers.clone(),
        labels: net.labels.clone(),
        options: network_options(net),
        ipam_options: BTreeMap::from([(
            "driver".to_owned(),
            if net.ipam_none() { "none" } else { IPAM_DRIVER }.to_owned(),
        )]),
    }
}

/// podman's `options` map for `net`.
fn network_options(net: &NetworkRecord) -> BTreeMap<String, String> {
    let mut options = net.options.clone();
    // Kept in `options` by netctl; podman has it in `ipam_options`.
    options.remove(netctl_state::OPTION_IPAM_DRIVER);
    if let Some(mtu) = net.mtu {
        options.insert("mtu".to_owned(), mtu.to_string());
    }
    // podman writes `isolate` only when it was asked for; off is the absence of the option.
    let isolate = match net.isolate {
        Isolate::Off => None,
        Isolate::On => Some("true"),
        Isolate::Strict => Some("strict"),
    };
    if let Some(isolate) = isolate {
        options.insert("isolate".to_owned(), isolate.to_owned());
    }
    options
}

/// One line of `netctl network ls`: podman's default columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRow {
    /// The first 12 characters of the ID.
    pub id: String,
    pub name: String,
    pub driver: String,
}

/// The `network ls` row of `net`.
pub fn network_ls_row(net: &NetworkRecord) -> NetworkRow {
    NetworkRow {
        id: short_id(&net.id).to_owned(),
        name: net.name.clone(),
        driver: net.driver.to_string(),
    }
}

/// `podman network ls`'s table: a `NETWORK ID  NAME  DRIVER` header, then one line per row,
/// sorted by name (as podman lists them), columns padded to their widest cell plus two spaces.
/// Every line ends with a newline.
pub fn render_network_table(rows: &[NetworkRow]) -> String {
    const HEADER: [&str; 3] = ["NETWORK ID", "NAME", "DRIVER"];
    let mut sorted: Vec<&NetworkRow> = rows.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    let lines: Vec<[&str; 3]> = std::iter::once(HEADER)
        .chain(
            sorted
                .iter()
                .map(|r| [r.id.as_str(), r.name.as_str(), r.driver.as_str()]),
        )
        .collect();
    let width = |col: usize| {
        lines
            .iter()
            .map(|l| l[col].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (id_width, name_width) = (width(0), width(1));
    let mut out = String::new();
    for [id, name, driver] in lines {
        let _ = writeln!(out, "{id:<id_width$}  {name:<name_width$}  {driver}");
    }
    out
}

/// `time` as RFC 3339 in UTC, the way Go's `time.RFC3339Nano` prints it: nanoseconds with
/// trailing zeros trimmed, no fraction at all on a whole second, `Z` for the zone.
pub fn format_rfc3339(time: SystemTime) -> String {
    let (secs, nanos) = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => (
            i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
            after.subsec_nanos(),
        ),
        Err(before) => {
            let before = before.duration();
            let secs = i64::try_from(before.as_secs()).map_or(i64::MIN, |s| -s);
            match before.subsec_nanos() {
                0 => (secs, 0),
                // Borrow a second so the fraction counts forward, as clock fields do.
                n => (secs.saturating_sub(1), 1_000_000_000 - n),
            }
        }
    };
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let of_day = secs.rem_euclid(86_400);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    );
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Days since 1970-01-01 → proleptic Gregorian (year, month, day), after Howard Hinnant's
/// `civil_from_days` (eras of 400 years starting on 0000-03-01, so leap days fall at the end).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn check_time(offset_secs: i64, nanos: u32, expect: &str) {
        let base = if offset_secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(offset_secs.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_secs(offset_secs.unsigned_abs())
        };
        let time = base + Duration::from_nanos(u64::from(nanos));
        assert_eq!(format_rfc3339(time), expect, "{offset_secs}s + {nanos}ns");
    }

    #[test]
    fn rfc3339_matches_go_rfc3339nano_in_utc() {
        check_time(0, 0, "1970-01-01T00:00:00Z");
        check_time(1, 500_000_000, "1970-01-01T00:00:01.5Z");
        check_time(1_674_724_476, 287_624_627, "2023-01-26T09:14:36.287624627Z");
        // Leap day and the day after.
        check_time(951_782_400, 0, "2000-02-29T00:00:00Z");
        check_time(951_868_800, 0, "2000-03-01T00:00:00Z");
        // End of a year.
        check_time(1_704_067_199, 1_000, "2023-12-31T23:59:59.000001Z");
        // Before the epoch the fraction still counts forward from the second.
        check_time(-1, 250_000_000, "1969-12-31T23:59:59.25Z");
        check_time(-86_400 * 365, 0, "1969-01-01T00:00:00Z");
    }

    #[test]
    fn pre_epoch_fraction_borrows_a_second() {
        let time = UNIX_EPOCH - Duration::from_millis(1_250);
        assert_eq!(format_rfc3339(time), "1969-12-31T23:59:58.75Z");
    }
}

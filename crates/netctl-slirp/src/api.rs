//! slirp4netns's API socket: port forwards added, listed and removed at run time.
//!
//! The protocol (slirp4netns `api.c`): one connection per request; the client writes one JSON
//! object (`{"execute": "add_hostfwd", "arguments": {...}}`), half-closes, and reads one JSON
//! reply: `{"return": {...}}` on success (`list_hostfwd` answers `{"entries": [...]}`
//! unwrapped), `{"error": {"desc": "..."}}` otherwise. slirp4netns
//! reads a request with a single `read`, so it is written in one piece.
//!
//! [`add_ports`] is idempotent (forwards already in place are kept, not added twice, so a
//! re-apply or a restart's re-add converges) and all-or-nothing (a failure removes what that
//! call added). [`remove_ports`] finds the forwards' ids with `list_hostfwd` and removes them;
//! a forward that is not there is fine.
//!
//! This talks to a helper netctl started over a Unix socket it owns; it is no kernel state, so
//! it does not go through the `netctl-sys` seam (tests use a scripted server instead).

use std::io::{self, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use netctl_types::{PortMapping, SlirpOptions};
use serde_json::{Value, json};

use crate::SlirpError;
use crate::settings::{HostFwd, host_forwards};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the socket to accept connections (it exists once slirp4netns said it
/// is ready; the wait covers a slow machine).
const CONNECT_WAIT: Duration = Duration::from_secs(3);
const CONNECT_POLL: Duration = Duration::from_millis(20);

/// A forward slirp4netns has in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// slirp4netns's id, for `remove_hostfwd`.
    pub id: u64,
    pub fwd: HostFwd,
}

fn connect(socket: &Path, request: &str) -> Result<UnixStream, SlirpError> {
    let started = Instant::now();
    loop {
        match UnixStream::connect(socket) {
            Ok(stream) => return Ok(stream),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) && started.elapsed() < CONNECT_WAIT =>
            {
                std::thread::sleep(CONNECT_POLL);
            }
            Err(source) => {
                return Err(SlirpError::Api {
                    socket: socket.to_owned(),
                    request: request.to_owned(),
                    source,
                });
            }
        }
    }
}

/// Sends one request, returns the reply (checked not to be an error).
fn call(socket: &Path, request: &str, body: &Value) -> Result<Value, SlirpError> {
    let api_error = |source| SlirpError::Api {
        socket: socket.to_owned(),
        request: request.to_owned(),
        source,
    };
    let mut stream = connect(socket, request)?;
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(REQUEST_TIMEOUT)))
        .map_err(api_error)?;
    let mut line = body.to_string();
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(api_error)?;
    stream
        .shutdown(std::net::Shutdown::Write)
        .map_err(api_error)?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).map_err(api_error)?;
    let refused = |reply: &str| SlirpError::ApiRefused {
        socket: socket.to_owned(),
        request: request.to_owned(),
        reply: reply.trim().to_owned(),
    };
    let parsed: Value = serde_json::from_str(&reply).map_err(|_| refused(&reply))?;
    if let Some(desc) = parsed.pointer("/error/desc").and_then(Value::as_str) {
        return Err(refused(desc));
    }
    if parsed.get("error").is_some() || !parsed.is_object() {
        return Err(refused(&reply));
    }
    Ok(parsed)
}

fn describe(fwd: &HostFwd) -> String {
    format!(
        "forward {} {}:{} to port {}",
        fwd.proto, fwd.host_addr, fwd.host_port, fwd.guest_port
    )
}

/// Adds one forward; returns its id.
fn add_one(socket: &Path, fwd: &HostFwd) -> Result<u64, SlirpError> {
    let request = describe(fwd);
    let body = json!({
        "execute": "add_hostfwd",
        "arguments": {
            "proto": fwd.proto,
            "host_addr": fwd.host_addr,
            "host_port": fwd.host_port,
            // Empty: slirp4netns's container address (cidr + 100).
            "guest_addr": "",
            "guest_port": fwd.guest_port,
        }
    });
    let reply = call(socket, &request, &body)?;
    reply
        .pointer("/return/id")
        .and_then(Value::as_u64)
        .ok_or_else(|| SlirpError::ApiRefused {
            socket: socket.to_owned(),
            request,
            reply: format!("no id in {reply}"),
        })
}

fn remove_one(socket: &Path, id: u64) -> Result<(), SlirpError> {
    let body = json!({"execute": "remove_hostfwd", "arguments": {"id": id}});
    call(socket, &format!("remove forward {id}"), &body).map(drop)
}

/// The forwards slirp4netns has now, in its order.
pub fn list_forwards(socket: &Path) -> Result<Vec<Forward>, SlirpError> {
    let request = "list forwards";
    let reply = call(socket, request, &json!({"execute": "list_hostfwd"}))?;
    let bad = || SlirpError::ApiRefused {
        socket: socket.to_owned(),
        request: request.to_owned(),
        reply: reply.to_string(),
    };
    // slirp4netns answers this one without the `return` wrapper: `{"entries": [...]}`.
    let entries = reply
        .get("entries")
        .or_else(|| reply.pointer("/return/entries"))
        .and_then(Value::as_array)
        .ok_or_else(bad)?;
    entries
        .iter()
        .map(|entry| {
            let text = |key: &str| entry.get(key).and_then(Value::as_str);
            let number = |key: &str| entry.get(key).and_then(Value::as_u64);
            let port = |key: &str| number(key).and_then(|n| u16::try_from(n).ok());
            let proto = match text("proto") {
                Some("tcp") => "tcp",
                Some("udp") => "udp",
                _ => return Err(bad()),
            };
            Ok(Forward {
                id: number("id").ok_or_else(bad)?,
                fwd: HostFwd {
                    proto,
                    host_addr: text("host_addr").ok_or_else(bad)?.to_owned(),
                    host_port: port("host_port").ok_or_else(bad)?,
                    guest_port: port("guest_port").ok_or_else(bad)?,
                },
            })
        })
        .collect()
}

/// Makes slirp4netns forward `ports` (all of them, or none on error) for a container with
/// `options`. Forwards already in place are kept; returns every forward of `ports` with its id.
pub fn add_ports(
    socket: &Path,
    options: &SlirpOptions,
    ports: &[PortMapping],
) -> Result<Vec<Forward>, SlirpError> {
    let wanted = host_forwards(ports, options.allow_host_loopback())?;
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let existing = list_forwards(socket)?;
    let mut added: Vec<u64> = Vec::new();
    let mut out = Vec::with_capacity(wanted.len());
    for fwd in wanted {
        if let Some(have) = existing.iter().find(|e| e.fwd == fwd) {
            out.push(have.clone());
            continue;
        }
        match add_one(socket, &fwd) {
            Ok(id) => {
                added.push(id);
                out.push(Forward { id, fwd });
            }
            Err(err) => {
                // All or nothing: take back what this call added (best effort; the error
                // that matters is the first one).
                for id in added {
                    let _ = remove_one(socket, id);
                }
                return Err(err);
            }
        }
    }
    Ok(out)
}

/// Stops forwarding `ports`; returns how many forwards were removed.
pub fn remove_ports(socket: &Path, ports: &[PortMapping]) -> Result<usize, SlirpError> {
    // Removing is always possible, whatever the options.
    let unwanted = host_forwards(ports, true)?;
    if unwanted.is_empty() {
        return Ok(0);
    }
    let existing = list_forwards(socket)?;
    let mut removed = 0;
    for have in existing.iter().filter(|e| unwanted.contains(&e.fwd)) {
        remove_one(socket, have.id)?;
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use netctl_types::Protocol;

    use super::*;
    use crate::tests::FakeApi;

    fn ports() -> Vec<PortMapping> {
        vec![
            PortMapping {
                host_ip: "127.0.0.1".into(),
                range: 2,
                ..PortMapping::new(8080, 80, Protocol::Tcp)
            },
            PortMapping::new(5353, 53, Protocol::Udp),
        ]
    }

    #[test]
    fn ports_are_added_once_listed_and_removed() {
        let api = FakeApi::start(None);
        let added = add_ports(&api.socket, &SlirpOptions::default(), &ports()).unwrap();
        assert_eq!(added.iter().map(|f| f.id).collect::<Vec<_>>(), [1, 2, 3]);
        // Again: nothing new is added, the same ids come back.
        let again = add_ports(&api.socket, &SlirpOptions::default(), &ports()).unwrap();
        assert_eq!(again, added);
        let listed = list_forwards(&api.socket).unwrap();
        assert_eq!(listed, added);
        assert_eq!(listed[2].fwd.host_addr, "0.0.0.0", "\"\" is every address");

        assert_eq!(remove_ports(&api.socket, &ports()[1..]).unwrap(), 1);
        assert_eq!(remove_ports(&api.socket, &ports()[1..]).unwrap(), 0);
        assert_eq!(list_forwards(&api.socket).unwrap().len(), 2);
        let requests = api.requests();
        insta::assert_snapshot!(requests.join("\n"), @r#"
        {"execute":"list_hostfwd"}
        {"arguments":{"guest_addr":"","guest_port":80,"host_addr":"127.0.0.1","host_port":8080,"proto":"tcp"},"execute":"add_hostfwd"}
        {"arguments":{"guest_addr":"","guest_port":81,"host_addr":"127.0.0.1","host_port":8081,"proto":"tcp"},"execute":"add_hostfwd"}
        {"arguments":{"guest_addr":"","guest_port":53,"host_addr":"0.0.0.0","host_port":5353,"proto":"udp"},"execute":"add_hostfwd"}
        {"execute":"list_hostfwd"}
        {"execute":"list_hostfwd"}
        {"execute":"list_hostfwd"}
        {"arguments":{"id":3},"execute":"remove_hostfwd"}
        {"execute":"list_hostfwd"}
        {"execute":"list_hostfwd"}
        "#);
    }

    #[test]
    fn a_refused_forward_takes_back_the_ones_added_before_it() {
        let api = FakeApi::start(Some(8081));
        let err = add_ports(&api.socket, &SlirpOptions::default(), &ports()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "slirp4netns refused to forward tcp 127.0.0.1:8081 to port 81 (API socket {}): \
                 bad request: add_hostfwd: slirp_add_hostfwd failed",
                api.socket.display()
            )
        );
        assert_eq!(list_forwards(&api.socket).unwrap(), []);
    }

    #[test]
    fn a_missing_socket_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("gone.sock");
        let started = Instant::now();
        let err = list_forwards(&socket).unwrap_err();
        assert!(
            started.elapsed() >= CONNECT_WAIT,
            "waited for the socket first"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "cannot reach the slirp4netns API socket {} to list forwards",
                socket.display()
            )
        );
    }
}

//! File behaviour of the edits: inode kept, modes of created files, user lines untouched,
//! missing files reported, concurrent writers serialised.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::thread;

use netctl_dns::hosts::{self, HostsParams};
use netctl_dns::resolv::{self, ResolvParams};
use netctl_dns::{FileOp, files_are, write_file};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn inode(path: &Path) -> u64 {
    fs::metadata(path).unwrap().ino()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// A temp dir and `<dir>/etc/netns/c1/<file>` inside it (parents not created).
fn target(file: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etc/netns/c1").join(file);
    (dir, path)
}

#[test]
fn write_file_creates_parents_and_modes() {
    let (dir, path) = target("hosts");
    assert!(write_file(&path, "10.0.0.1\ta\n").unwrap());
    assert_eq!(fs::read_to_string(&path).unwrap(), "10.0.0.1\ta\n");
    assert_eq!(mode(&path), 0o644);
    for created in ["etc", "etc/netns", "etc/netns/c1"] {
        assert_eq!(mode(&dir.path().join(created)), 0o755, "{created}");
    }
    assert!(
        !write_file(&path, "10.0.0.1\ta\n").unwrap(),
        "same content is no change"
    );
    // Nothing but the file itself: `ip netns exec` would bind-mount any other entry over /etc.
    let entries: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(entries.len(), 1);
}

#[test]
fn write_file_keeps_inode_and_mode_of_existing_file() {
    let (_dir, path) = target("resolv.conf");
    write_file(&path, "nameserver 10.0.0.1\nnameserver 10.0.0.2\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let before = inode(&path);
    assert!(write_file(&path, "nameserver 10.0.0.3\n").unwrap());
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "nameserver 10.0.0.3\n",
        "shorter content cut to length"
    );
    assert_eq!(inode(&path), before);
    assert_eq!(mode(&path), 0o600, "an existing file's mode is the user's");
}

#[test]
fn edits_keep_inode() {
    let (_dir, hosts_path) = target("hosts");
    let params = HostsParams {
        container_entries: hosts::container_entries([ip("10.89.0.10")], "c1", "c1"),
        ..HostsParams::default()
    };
    write_file(&hosts_path, &hosts::new_hosts(&params)).unwrap();
    let before = inode(&hosts_path);
    let old = params.container_entries.clone();
    let new = hosts::container_entries([ip("10.90.0.10")], "c1", "c1");
    assert!(hosts::add_if_exists(&hosts_path, &old, &new).unwrap());
    assert!(hosts::remove(&hosts_path, &old).unwrap());
    assert!(
        hosts::add(
            &hosts_path,
            &hosts::container_entries([ip("127.0.0.1")], "j", "joiner")
        )
        .unwrap()
    );
    assert_eq!(inode(&hosts_path), before);
    insta::assert_snapshot!(fs::read_to_string(&hosts_path).unwrap(), @r"
    127.0.0.1	localhost
    ::1	localhost
    10.90.0.10	c1
    127.0.0.1	j joiner
    ");

    let resolv_path = hosts_path.with_file_name("resolv.conf");
    let params = ResolvParams {
        nameservers: vec![ip("10.89.0.1")],
        searches: vec!["dns.podman".to_owned()],
        host_content: Some("nameserver 192.0.2.53\noptions ndots:2\n".to_owned()),
        keep_host_servers: true,
        ..ResolvParams::default()
    };
    write_file(&resolv_path, &resolv::new_resolv_conf(&params)).unwrap();
    let before = inode(&resolv_path);
    assert!(resolv::add_nameservers(&resolv_path, &[ip("10.90.0.1")]).unwrap());
    assert!(resolv::remove_nameservers(&resolv_path, &[ip("10.89.0.1")]).unwrap());
    assert_eq!(inode(&resolv_path), before);
    insta::assert_snapshot!(fs::read_to_string(&resolv_path).unwrap(), @r"
    search dns.podman
    nameserver 10.90.0.1
    nameserver 192.0.2.53
    options ndots:2
    ");
}

#[test]
fn unchanged_edits_report_no_change() {
    let (_dir, path) = target("hosts");
    let user = "# mine\n10.1.1.1 keep   me\n";
    write_file(&path, user).unwrap();
    let ours = hosts::container_entries([ip("10.89.0.10")], "c1", "c1");
    let other = hosts::container_entries([ip("10.90.0.10")], "c1", "c1");
    assert!(
        !hosts::add_if_exists(&path, &ours, &other).unwrap(),
        "user file: no match, no write"
    );
    assert!(!hosts::remove(&path, &ours).unwrap());
    assert!(!hosts::add(&path, &[]).unwrap());
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        user,
        "user lines byte for byte"
    );
}

#[test]
fn edits_of_missing_files_fail_as_not_found() {
    let (_dir, path) = target("hosts");
    let entries = hosts::container_entries([ip("10.89.0.10")], "c1", "c1");
    let err = hosts::add(&path, &entries).unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.op, FileOp::Open);
    assert_eq!(err.path, path);
    assert_eq!(err.to_string(), format!("cannot open {}", path.display()));
    let err = resolv::remove_nameservers(&path.with_file_name("resolv.conf"), &[ip("10.0.0.1")])
        .unwrap_err();
    assert!(err.is_not_found());
    assert!(
        !path.parent().unwrap().exists(),
        "a failed edit creates nothing"
    );
}

#[test]
fn concurrent_adds_are_serialised() {
    const THREADS: usize = 8;
    // Several adds per thread, all starting together, so that an unlocked read-modify-write
    // would lose updates.
    const ADDS_PER_THREAD: usize = 25;

    let (_dir, path) = target("hosts");
    write_file(&path, "127.0.0.1\tlocalhost\n").unwrap();
    let before = inode(&path);
    let start = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let path = path.clone();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                for i in 0..ADDS_PER_THREAD {
                    let entry =
                        hosts::HostEntry::new(ip(&format!("10.{t}.0.{i}")), [format!("t{t}-{i}")]);
                    assert!(hosts::add(&path, &[entry]).unwrap());
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }

    let content = fs::read_to_string(&path).unwrap();
    let entries = hosts::parse(&content);
    assert_eq!(entries.len(), 1 + THREADS * ADDS_PER_THREAD, "{content}");
    for t in 0..THREADS {
        for i in 0..ADDS_PER_THREAD {
            let wanted = hosts::HostEntry::new(ip(&format!("10.{t}.0.{i}")), [format!("t{t}-{i}")]);
            assert!(entries.contains(&wanted), "missing {wanted}");
        }
    }
    assert_eq!(inode(&path), before);
}

#[test]
fn files_are_compares_every_file_through_one_trusted_directory() {
    let (_dir, hosts) = target("hosts");
    let container = hosts.parent().unwrap().to_path_buf();
    write_file(&hosts, "10.0.0.1\ta\n").unwrap();
    write_file(&container.join("resolv.conf"), "nameserver 10.0.0.1\n").unwrap();
    let both = [
        ("hosts", "10.0.0.1\ta\n"),
        ("resolv.conf", "nameserver 10.0.0.1\n"),
    ];
    assert!(files_are(&container, &both));
    // One differs, one is missing, the directory is missing: each is "not as expected".
    assert!(!files_are(&container, &[("hosts", "10.0.0.2\ta\n")]));
    assert!(!files_are(&container, &[("hostname", "c1\n")]));
    assert!(!files_are(&container.join("gone"), &both));
    // A link in a file's place is never read through, however its target reads.
    let elsewhere = container.join("elsewhere");
    fs::write(&elsewhere, "10.0.0.1\ta\n").unwrap();
    fs::remove_file(&hosts).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &hosts).unwrap();
    assert!(!files_are(&container, &[("hosts", "10.0.0.1\ta\n")]));
}

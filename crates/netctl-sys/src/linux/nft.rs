//! [`Nft`] for [`LinuxSys`]: the `nft` program with an argv (never a shell), JSON in and out.

use std::io::{self, Write as _};
use std::process::{Command, Output, Stdio};

use super::LinuxSys;
use crate::{Nft, NftFamily, SysError, SysResult};

/// Whether `name` is a plain nft identifier, so it can never be read as an option or as more
/// than one token.
fn valid_table_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl LinuxSys {
    /// Runs `nft ARGS`, feeding `input` on stdin, and returns its output whatever its status.
    fn run_nft(&self, args: &[&str], input: &[u8], op: &str) -> SysResult<Output> {
        let spawn_error = |source: io::Error| SysError::NftRun {
            op: op.to_owned(),
            source,
        };
        let mut child = Command::new(&self.nft)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        let mut stdin = child.stdin.take().expect("stdin was piped");
        // Feed stdin while the output is being read, so neither side can fill a pipe and wait
        // on the other.
        std::thread::scope(|scope| {
            scope.spawn(move || {
                // A write error means nft exited early; its status and stderr tell why.
                let _ = stdin.write_all(input);
            });
            child.wait_with_output()
        })
        .map_err(spawn_error)
    }
}

fn refused(op: &str, output: &Output) -> SysError {
    SysError::Nft {
        op: op.to_owned(),
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    }
}

impl Nft for LinuxSys {
    fn nft_apply(&self, json: &str) -> SysResult<()> {
        let op = "apply a ruleset";
        let output = self.run_nft(&["-j", "-f", "-"], json.as_bytes(), op)?;
        if output.status.success() {
            Ok(())
        } else {
            Err(refused(op, &output))
        }
    }

    fn nft_apply_elements(&self, batch: &netctl_types::nft::ElementBatch) -> SysResult<()> {
        super::nfnl::apply_elements(batch).map_err(|source| SysError::NfNetlink {
            op: format!("change elements of table {}", batch.table),
            source,
        })
    }

    fn nft_rule_count(&self, family: NftFamily, name: &str) -> SysResult<usize> {
        super::nfnl::rule_count(family, name).map_err(|source| SysError::NfNetlink {
            op: format!("count the rules of table {family} {name}"),
            source,
        })
    }

    fn nft_list_table(&self, family: NftFamily, name: &str) -> SysResult<Option<String>> {
        if !valid_table_name(name) {
            return Err(SysError::InvalidInput {
                what: "nft table name",
                value: name.to_owned(),
                reason: "must be letters, digits, '_', '.' or '-', starting with a letter or '_'",
            });
        }
        let op = format!("list table {family} {name}");
        // Terse (-t): sets and maps without their elements. Callers check the table's shape;
        // with thousands of containers the elements would be most of the output.
        let output = self.run_nft(
            &["-j", "-t", "list", "table", family.as_str(), name],
            b"",
            &op,
        )?;
        if output.status.success() {
            return Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned()));
        }
        let err = refused(&op, &output);
        if err.is_not_found() {
            Ok(None)
        } else {
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_single_identifiers() {
        for good in ["netctl", "_x", "a.b-c_9"] {
            assert!(valid_table_name(good), "{good}");
        }
        for bad in ["", "-f", "9a", "a b", "a;b", "a\nb"] {
            assert!(!valid_table_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_missing_nft_program_is_a_run_error() {
        let sys = LinuxSys::new().with_nft_program("/nonexistent/nft");
        let err = sys.nft_apply("{}").unwrap_err();
        assert!(matches!(err, SysError::NftRun { .. }), "{err:?}");
        assert_eq!(err.to_string(), "cannot run nft to apply a ruleset");
    }

    /// A stand-in `nft`: a script that records its arguments and stdin, prints `stdout`, and
    /// fails with `stderr` when that is not empty.
    fn stand_in(dir: &std::path::Path, stdout: &str, stderr: &str) -> LinuxSys {
        use std::os::unix::fs::PermissionsExt as _;
        let script = dir.join("nft");
        let body = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {dir}/args\ncat > {dir}/stdin\n\
             printf '%s' '{stdout}'\n[ -z '{stderr}' ] || {{ echo '{stderr}' >&2; exit 1; }}\n",
            dir = dir.display()
        );
        std::fs::write(&script, body).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        LinuxSys::new().with_nft_program(script)
    }

    /// Runs `call`, retrying while the freshly written script is still busy: another test
    /// thread may fork while it holds the script open for writing (`ETXTBSY`).
    fn retry_busy<T>(mut call: impl FnMut() -> SysResult<T>) -> SysResult<T> {
        for _ in 0..50 {
            match call() {
                Err(err) if err.errno() == Some(nix::errno::Errno::ETXTBSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
        call()
    }

    #[test]
    fn apply_feeds_the_document_on_stdin_with_argv_only() {
        let dir = tempfile::tempdir().unwrap();
        let sys = stand_in(dir.path(), "", "");
        let doc = r#"{"nftables": [{"add": {"table": {"family": "inet", "name": "x y"}}}]}"#;
        retry_busy(|| sys.nft_apply(doc)).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("args")).unwrap(),
            "-j\n-f\n-\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("stdin")).unwrap(),
            doc
        );
    }

    #[test]
    fn listing_a_missing_table_is_none_and_a_present_one_its_json() {
        let dir = tempfile::tempdir().unwrap();
        let sys = stand_in(
            dir.path(),
            "",
            "Error: No such file or directory; did you mean table netavark in family inet?",
        );
        assert_eq!(
            retry_busy(|| sys.nft_list_table(NftFamily::Inet, "netctl")).unwrap(),
            None
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("args")).unwrap(),
            "-j\n-t\nlist\ntable\ninet\nnetctl\n"
        );
        let sys = stand_in(dir.path(), r#"{"nftables":[]}"#, "");
        assert_eq!(
            retry_busy(|| sys.nft_list_table(NftFamily::Ip6, "netctl"))
                .unwrap()
                .as_deref(),
            Some(r#"{"nftables":[]}"#)
        );
        let err = sys.nft_list_table(NftFamily::Inet, "-f").unwrap_err();
        assert!(matches!(err, SysError::InvalidInput { .. }), "{err:?}");
    }

    #[test]
    fn nft_refusal_carries_stderr() {
        // `false` stands in for an nft that rejects everything (exit 1, nothing on stdout).
        let sys = LinuxSys::new().with_nft_program("false");
        let err = sys.nft_apply("{}").unwrap_err();
        assert!(matches!(err, SysError::Nft { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("nft could not apply a ruleset (exit status: 1)")
        );
        // A failure that does not say "No such file or directory" is not "table absent".
        let err = sys.nft_list_table(NftFamily::Inet, "netctl").unwrap_err();
        assert!(!err.is_not_found());
    }
}

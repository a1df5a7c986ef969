//! Which flags the installed slirp4netns understands, found as podman finds them: in the text
//! of `slirp4netns --help`.

use std::time::Duration;

use netctl_sys::{SpawnSpec, Sys};

use crate::SlirpError;

/// How long `slirp4netns --help` may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Flags of slirp4netns that netctl may use.
#[allow(clippy::struct_excessive_bools)] // one bool per flag is what this is
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    pub disable_host_loopback: bool,
    pub mtu: bool,
    pub enable_seccomp: bool,
    pub cidr: bool,
    pub enable_ipv6: bool,
    pub outbound_addr: bool,
    pub outbound_addr6: bool,
    pub api_socket: bool,
    pub netns_type: bool,
}

impl Features {
    /// Reads the flags from `slirp4netns --help` output.
    pub fn from_help(help: &str) -> Self {
        let has = |flag: &str| {
            help.split(|c: char| c.is_whitespace() || c == ',' || c == '=')
                .any(|word| word == flag)
        };
        Self {
            disable_host_loopback: has("--disable-host-loopback"),
            mtu: has("--mtu"),
            enable_seccomp: has("--enable-seccomp"),
            cidr: has("--cidr"),
            enable_ipv6: has("--enable-ipv6"),
            outbound_addr: has("--outbound-addr"),
            outbound_addr6: has("--outbound-addr6"),
            api_socket: has("--api-socket"),
            netns_type: has("--netns-type"),
        }
    }

    /// Runs `program --help` and reads it.
    pub fn probe(sys: &dyn Sys, program: &str) -> Result<Self, SlirpError> {
        let out = sys
            .run(&SpawnSpec::new([program, "--help"]), PROBE_TIMEOUT)
            .map_err(|source| SlirpError::Probe {
                program: program.to_owned(),
                source: Box::new(source),
            })?;
        if !out.success {
            return Err(SlirpError::ProbeFailed {
                program: program.to_owned(),
                status: out.status,
                stderr: out.stderr.trim().to_owned(),
            });
        }
        // Some versions print their usage on stderr.
        Ok(Self::from_help(&format!("{}\n{}", out.stdout, out.stderr)))
    }

    /// Every flag, as a slirp4netns 1.2.0 has them.
    pub fn all() -> Self {
        Self {
            disable_host_loopback: true,
            mtu: true,
            enable_seccomp: true,
            cidr: true,
            enable_ipv6: true,
            outbound_addr: true,
            outbound_addr6: true,
            api_socket: true,
            netns_type: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use netctl_sys::{FakeSys, RunOutput};

    use super::*;

    pub(crate) const HELP_1_2_0: &str = include_str!("testdata/slirp4netns-1.2.0-help.txt");

    #[test]
    fn slirp4netns_1_2_0_has_everything() {
        assert_eq!(Features::from_help(HELP_1_2_0), Features::all());
    }

    #[test]
    fn an_old_slirp4netns_lacks_what_its_help_does_not_mention() {
        // slirp4netns 0.4: no --enable-ipv6 long form nor --outbound-addr(6); `--mtu` must not
        // be found inside `--mtu-foo` either.
        let help = "-c, --configure\n-e, --exit-fd=FD\n-m, --mtu-foo=MTU\n--cidr=CIDR\n\
                    --disable-host-loopback\n--netns-type=TYPE\n-a, --api-socket=PATH\n";
        let features = Features::from_help(help);
        assert!(features.cidr && features.api_socket && features.netns_type);
        assert!(!features.mtu && !features.enable_ipv6 && !features.outbound_addr);
        assert!(!features.outbound_addr6 && !features.enable_seccomp);
    }

    #[test]
    fn probe_runs_help_and_a_failure_says_so() {
        let sys = FakeSys::new();
        let err = Features::probe(&sys, "slirp4netns").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot probe the features of slirp4netns (`slirp4netns --help`)"
        );
        sys.set_run_output(
            "slirp4netns",
            RunOutput {
                success: true,
                status: "exit status: 0".into(),
                stdout: HELP_1_2_0.into(),
                stderr: String::new(),
            },
        );
        assert_eq!(
            Features::probe(&sys, "slirp4netns").unwrap(),
            Features::all()
        );
        sys.set_run_output(
            "slirp4netns",
            RunOutput {
                success: false,
                status: "exit status: 1".into(),
                stdout: String::new(),
                stderr: "unknown option --help\n".into(),
            },
        );
        let err = Features::probe(&sys, "slirp4netns").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`slirp4netns --help` failed (exit status: 1): unknown option --help"
        );
    }
}

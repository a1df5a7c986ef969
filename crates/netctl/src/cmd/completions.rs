//! `netctl completions SHELL`: a completion script for the shell, generated from the clap
//! definitions, on stdout.

use std::io::Write as _;

use clap::CommandFactory as _;

use crate::Outcome;
use crate::cli::{Cli, CompletionsArgs};

pub fn completions(args: &CompletionsArgs) -> Outcome {
    let script = script(args.shell);
    // A closed pipe (`netctl completions bash | head`) is not an error worth a message.
    drop(std::io::stdout().lock().write_all(&script));
    Outcome::Success
}

/// The completion script for `shell`.
pub fn script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "netctl", &mut script);
    script
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap_complete::Shell;

    /// Each script offers every visible command and the global options.
    #[test]
    fn scripts_complete_every_command() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = String::from_utf8(script(shell)).unwrap();
            for command in Cli::command().get_subcommands() {
                let name = command.get_name();
                if !command.is_hide_set() {
                    assert!(text.contains(name), "{shell}: {name}");
                }
            }
            assert!(text.contains("firewall-driver"), "{shell}");
            assert!(text.contains("nftables"), "{shell}: values are completed");
        }
    }
}

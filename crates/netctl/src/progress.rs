//! Progress of the long operations (`apply`, `destroy`, `reload`) on a terminal: a bar on stderr
//! with the steps done, the steps in all and the step running, fed by the engine's progress
//! callback. Only when text output goes to a terminal (stdout and stderr both): piped,
//! redirected or JSON output gets nothing extra. Coloured only there too, and never with
//! `NO_COLOR` set (no-color.org: present and not empty).

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::OutputFormat;
use crate::output::Reporter;

/// A progress bar, or nothing; cleared when dropped (also when the operation failed), so the
/// result or the error is printed on a clean line.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(reporter: &Reporter) -> Progress {
        let terminal = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        let bar = shown(reporter.format(), terminal).then(|| {
            let colour = colours(std::env::var_os("NO_COLOR").as_deref());
            let style = ProgressStyle::with_template(template(colour))
                .expect("the template is valid")
                .progress_chars("=> ");
            let bar = ProgressBar::new(0).with_style(style);
            // The spinner turns during a long step (starting a helper, a big transaction).
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress { bar }
    }

    /// The engine's progress callback (`Engine::with_progress`).
    pub fn callback(&self) -> impl Fn(usize, usize, &str) + Sync + '_ {
        move |done, total, step| {
            if let Some(bar) = &self.bar {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                bar.set_message(step.to_owned());
            }
        }
    }
}

impl Progress {
    /// Clears the bar before the result is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Whether to draw at all.
fn shown(format: OutputFormat, terminal: bool) -> bool {
    format == OutputFormat::Text && terminal
}

/// Whether to colour, given `NO_COLOR`.
fn colours(no_color: Option<&std::ffi::OsStr>) -> bool {
    no_color.is_none_or(std::ffi::OsStr::is_empty)
}

fn template(colour: bool) -> &'static str {
    if colour {
        "{spinner:.cyan} [{pos}/{len}] {bar:24.cyan/blue} {wide_msg}"
    } else {
        "{spinner} [{pos}/{len}] {bar:24} {wide_msg}"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn only_text_on_a_terminal() {
        assert!(shown(OutputFormat::Text, true));
        assert!(!shown(OutputFormat::Text, false));
        assert!(!shown(OutputFormat::Json, true));
    }

    #[test]
    fn no_color_turns_colours_off() {
        assert!(colours(None));
        assert!(colours(Some(OsStr::new(""))));
        assert!(!colours(Some(OsStr::new("1"))));
        assert!(!template(false).contains('.'));
        assert!(template(true).contains(".cyan"));
        for colour in [true, false] {
            ProgressStyle::with_template(template(colour)).unwrap();
        }
    }

    /// Off a terminal (as under `cargo test`) the callback draws nothing and costs nothing.
    #[test]
    fn off_a_terminal_nothing_is_drawn() {
        let progress = Progress::new(&Reporter::new(OutputFormat::Text));
        if !std::io::stderr().is_terminal() {
            assert!(progress.bar.is_none());
        }
        (progress.callback())(0, 3, "create network demo");
    }
}

//! [`Processes`] for [`LinuxSys`]: helper programs started with an argv (never a shell), and
//! `/proc/PID/stat` to tell a live process of ours from a recycled pid.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag};
use nix::unistd::Pid;

use super::LinuxSys;
use crate::error::os_error;
use crate::{
    Processes, RunOutput, Signal, SpawnMode, SpawnSpec, Spawned, StdioSpec, SysError, SysResult,
};

/// How often a daemon's launcher is checked for having exited (and a ready pipe for its byte).
const LAUNCHER_POLL: Duration = Duration::from_millis(10);

/// How long a program that closed its ready pipe without writing gets to exit by itself before
/// it is killed.
const CLOSED_PIPE_EXIT_WAIT: Duration = Duration::from_secs(1);

/// How long [`Processes::run`] waits for a killed program's output after its timeout.
const RUN_KILL_WAIT: Duration = Duration::from_secs(1);

/// The state letter and start time (fields 3 and 22) of `/proc/PID/stat`.
fn stat_fields(pid: u32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2 (comm) is in parentheses and may itself contain spaces and ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `fields` now starts at field 4; field 22 is 18 further on.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some((state, start_time))
}

fn stdio(spec: &StdioSpec, input: bool) -> io::Result<Stdio> {
    Ok(match spec {
        StdioSpec::Null => Stdio::null(),
        StdioSpec::Inherit => Stdio::inherit(),
        StdioSpec::File(path) => {
            let file = if input {
                File::open(path)
            } else {
                OpenOptions::new().create(true).append(true).open(path)
            };
            let file = file.map_err(|e| {
                io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
            })?;
            Stdio::from(file)
        }
    })
}

/// Reads what a pipe holds right now without waiting for its writers to close it (a daemon may
/// have inherited the write end and keep it open for its whole life).
fn drain_pipe(pipe: Option<impl io::Read + std::os::fd::AsFd>) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    if nix::fcntl::fcntl(&pipe, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match pipe.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn read_pid_file(program: &str, path: &Path) -> SysResult<u32> {
    let pid_error = |source| SysError::PidFile {
        program: program.to_owned(),
        path: path.to_owned(),
        source,
    };
    let text = fs::read_to_string(path).map_err(pid_error)?;
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|pid| *pid > 0)
        .ok_or_else(|| {
            pid_error(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a pid: {:?}", text.trim()),
            ))
        })
}

/// What came out of a ready pipe.
enum ReadyWait {
    /// A byte: the program is ready.
    Ready,
    /// End of file: the program closed the pipe (exited) without saying it was ready.
    Closed,
    TimedOut,
    Failed(io::Error),
}

/// Waits up to `timeout` for one byte on `pipe` (made non-blocking here).
fn wait_ready(mut pipe: io::PipeReader, timeout: Duration) -> ReadyWait {
    if let Err(errno) = nix::fcntl::fcntl(&pipe, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)) {
        return ReadyWait::Failed(os_error(errno));
    }
    let started = Instant::now();
    let mut byte = [0u8; 1];
    loop {
        match pipe.read(&mut byte) {
            Ok(0) => return ReadyWait::Closed,
            Ok(_) => return ReadyWait::Ready,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if started.elapsed() >= timeout {
                    return ReadyWait::TimedOut;
                }
                std::thread::sleep(LAUNCHER_POLL);
            }
            Err(e) => return ReadyWait::Failed(e),
        }
    }
}

/// Kills and reaps a child that must not be left behind.
fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Reaps `child` in the background when it exits, so it does not linger as our zombie.
fn reap_later(mut child: Child) {
    std::thread::spawn(move || child.wait());
}

impl LinuxSys {
    /// Waits for a ready-pipe program's byte; on success returns it identified, on any failure
    /// kills and reaps it.
    fn finish_ready_start(
        mut child: Child,
        program: &str,
        pipe: io::PipeReader,
        timeout: Duration,
    ) -> SysResult<Spawned> {
        match wait_ready(pipe, timeout) {
            ReadyWait::Ready => {
                let pid = child.id();
                // Not reaped yet, so its /proc entry is there even if it exited at once.
                let Some((_, start_time)) = stat_fields(pid) else {
                    kill_and_reap(&mut child);
                    return Err(SysError::Spawn {
                        program: program.to_owned(),
                        source: io::Error::other("cannot read its start time from /proc"),
                    });
                };
                reap_later(child);
                Ok(Spawned { pid, start_time })
            }
            ReadyWait::Closed => {
                let started = Instant::now();
                let status = loop {
                    match child.try_wait() {
                        Ok(Some(status)) => break status.to_string(),
                        Ok(None) if started.elapsed() < CLOSED_PIPE_EXIT_WAIT => {
                            std::thread::sleep(LAUNCHER_POLL);
                        }
                        _ => {
                            kill_and_reap(&mut child);
                            break "closed its ready pipe and was killed".to_owned();
                        }
                    }
                };
                Err(SysError::SpawnFailed {
                    program: program.to_owned(),
                    status,
                    output: "it stopped before reporting that it was ready".to_owned(),
                })
            }
            ReadyWait::TimedOut => {
                kill_and_reap(&mut child);
                Err(SysError::SpawnTimeout {
                    program: program.to_owned(),
                    timeout,
                })
            }
            ReadyWait::Failed(source) => {
                kill_and_reap(&mut child);
                Err(SysError::Spawn {
                    program: program.to_owned(),
                    source,
                })
            }
        }
    }

    /// Waits for a daemon's launcher to exit, returns the daemon's pid from the pid file.
    fn finish_daemon_start(
        mut launcher: Child,
        program: &str,
        pid_file: &Path,
        timeout: Duration,
    ) -> SysResult<u32> {
        let started = Instant::now();
        let status = loop {
            match launcher.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() < timeout => std::thread::sleep(LAUNCHER_POLL),
                Ok(None) => {
                    let _ = launcher.kill();
                    let _ = launcher.wait();
                    return Err(SysError::SpawnTimeout {
                        program: program.to_owned(),
                        timeout,
                    });
                }
                Err(source) => {
                    return Err(SysError::Spawn {
                        program: program.to_owned(),
                        source,
                    });
                }
            }
        };
        if !status.success() {
            let mut output = drain_pipe(launcher.stderr.take());
            let stdout = drain_pipe(launcher.stdout.take());
            if !stdout.trim().is_empty() {
                output.push_str(&stdout);
            }
            return Err(SysError::SpawnFailed {
                program: program.to_owned(),
                status: status.to_string(),
                output: output.trim().to_owned(),
            });
        }
        read_pid_file(program, pid_file)
    }
}

impl Processes for LinuxSys {
    fn spawn(&self, spec: &SpawnSpec) -> SysResult<Spawned> {
        let program = spec.program();
        let Some((argv0, args)) = spec.argv.split_first() else {
            return Err(SysError::empty_argv());
        };
        let spawn_error = |source| SysError::Spawn {
            program: program.clone(),
            source,
        };
        let mut command = Command::new(argv0);
        command
            .args(args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            // Its own process group: a Ctrl-C aimed at netctl must not take helpers down.
            .process_group(0);
        if !matches!(spec.mode, SpawnMode::ReadyPipe { .. }) {
            command.stdin(stdio(&spec.stdin, true).map_err(spawn_error)?);
        }
        let pid = match &spec.mode {
            SpawnMode::Foreground => {
                command
                    .stdout(stdio(&spec.stdout, false).map_err(spawn_error)?)
                    .stderr(stdio(&spec.stderr, false).map_err(spawn_error)?);
                let mut child = command.spawn().map_err(spawn_error)?;
                let pid = child.id();
                // Not reaped yet, so its /proc entry is there.
                let Some((_, start_time)) = stat_fields(pid) else {
                    // Without a start time it could never be told from a recycled pid.
                    kill_and_reap(&mut child);
                    return Err(spawn_error(io::Error::other(
                        "cannot read its start time from /proc",
                    )));
                };
                reap_later(child);
                return Ok(Spawned { pid, start_time });
            }
            SpawnMode::ReadyPipe { timeout } => {
                let (reader, writer) = io::pipe().map_err(spawn_error)?;
                command
                    .stdin(Stdio::from(writer))
                    .stdout(stdio(&spec.stdout, false).map_err(spawn_error)?)
                    .stderr(stdio(&spec.stderr, false).map_err(spawn_error)?);
                let child = command.spawn().map_err(spawn_error)?;
                // `command` holds our copy of the write end; the pipe reports end of file only
                // once the program's copy is the last one and it closes it.
                drop(command);
                return Self::finish_ready_start(child, &program, reader, *timeout);
            }
            SpawnMode::Daemon { pid_file, timeout } => {
                // A stale file from an earlier run must not be mistaken for the new daemon's.
                match fs::remove_file(pid_file) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(SysError::PidFile {
                            program: program.clone(),
                            path: pid_file.clone(),
                            source: e,
                        });
                    }
                    _ => {}
                }
                command.stdout(Stdio::piped()).stderr(Stdio::piped());
                let launcher = command.spawn().map_err(spawn_error)?;
                Self::finish_daemon_start(launcher, &program, pid_file, *timeout)?
            }
        };
        let start_time = self
            .process_start_time(pid)
            .ok_or_else(|| SysError::SpawnFailed {
                program: program.clone(),
                status: format!("daemon pid {pid} exited right after starting"),
                output: String::new(),
            })?;
        Ok(Spawned { pid, start_time })
    }

    fn run(&self, spec: &SpawnSpec, timeout: Duration) -> SysResult<RunOutput> {
        let program = spec.program();
        let Some((argv0, args)) = spec.argv.split_first() else {
            return Err(SysError::empty_argv());
        };
        if spec.mode != SpawnMode::Foreground {
            return Err(SysError::InvalidInput {
                what: "run mode",
                value: spec.command_line(),
                reason: "a program run to completion must be spawned in the foreground mode",
            });
        }
        let spawn_error = |source| SysError::Spawn {
            program: program.clone(),
            source,
        };
        let child = Command::new(argv0)
            .args(args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(stdio(&spec.stdin, true).map_err(spawn_error)?)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(spawn_error)?;
        let pid = child.id();
        // Collecting the output and the exit status on a thread keeps the timeout honest even
        // when the program fills a pipe and blocks.
        let (done, result) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(child.wait_with_output());
        });
        let Ok(output) = result.recv_timeout(timeout) else {
            // Still unreaped (the thread waits on it), so the pid is still this program.
            let _ = self.kill(pid, Signal::SIGKILL);
            let _ = result.recv_timeout(RUN_KILL_WAIT);
            return Err(SysError::SpawnTimeout { program, timeout });
        };
        let output = output.map_err(spawn_error)?;
        Ok(RunOutput {
            success: output.status.success(),
            status: output.status.to_string(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    fn process_start_time(&self, pid: u32) -> Option<u64> {
        stat_fields(pid).map(|(_, start_time)| start_time)
    }

    fn kill(&self, pid: u32, signal: Signal) -> SysResult<()> {
        let raw =
            i32::try_from(pid)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| SysError::InvalidInput {
                    what: "pid",
                    value: pid.to_string(),
                    reason: "must be a single positive process id",
                })?;
        nix::sys::signal::kill(Pid::from_raw(raw), signal).map_err(|e| SysError::Signal {
            pid,
            signal,
            source: os_error(e),
        })
    }

    fn is_alive(&self, pid: u32, start_time: u64) -> bool {
        // A zombie (Z) or dead (X) process has exited even though its pid is still taken.
        stat_fields(pid)
            .is_some_and(|(state, start)| start == start_time && !matches!(state, 'Z' | 'X'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_stat_parses() {
        let me = std::process::id();
        let (state, start) = stat_fields(me).expect("own /proc entry");
        assert!(matches!(state, 'R' | 'S'), "{state}");
        assert!(start > 0);
        assert_eq!(LinuxSys::new().process_start_time(me), Some(start));
        assert!(LinuxSys::new().is_alive(me, start));
        assert!(!LinuxSys::new().is_alive(me, start + 1));
    }
}

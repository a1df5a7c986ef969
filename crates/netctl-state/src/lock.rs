//! The operation lock: one netctl process at a time changes the system and the store.
//!
//! A netctl operation observes the system, decides, changes it and records the result; two of
//! them interleaving would record a world that never existed. So every operation holds an
//! exclusive `flock(2)` on `<state_dir>/netctl.lock` from before it observes until after it has
//! recorded. The kernel drops the lock when the holder exits, however it exits, so a killed
//! netctl never leaves the state locked.
//!
//! The holder writes its pid and command line into the lock file, so a process that gives up
//! waiting can say who holds the lock. That text is advisory: it is written after the lock is
//! taken and cleared before it is released, and nothing but error messages reads it.
//!
//! Invariant: the lock file is never deleted (deleting a flock'ed file lets two processes lock
//! two different files under the same name).

use std::fmt;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use rand::RngExt as _;

use crate::dir::{FILE_MODE, LOCK_FILE, ensure_mode, ensure_state_dir, open_private_file};
use crate::error::LockError;

/// The process that holds (or last held) the lock, as written in the lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: u32,
    /// The holder's command line, arguments joined by spaces.
    pub command: String,
}

impl LockHolder {
    /// This process.
    pub fn current() -> LockHolder {
        LockHolder {
            pid: std::process::id(),
            command: current_command(),
        }
    }

    fn encode(&self) -> String {
        format!("{}\n{}\n", self.pid, self.command)
    }

    fn decode(text: &str) -> Option<LockHolder> {
        let mut lines = text.lines();
        let pid = lines.next()?.trim().parse().ok()?;
        let command = lines.next().unwrap_or_default().to_owned();
        Some(LockHolder { pid, command })
    }
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.command)
    }
}

/// The command line of this process, program name without its directory, as a user would type
/// it: `netctl apply -f x.toml`.
fn current_command() -> String {
    let mut args = std::env::args_os().map(|a| a.to_string_lossy().into_owned());
    let program = args
        .next()
        .map(|p| {
            Path::new(&p)
                .file_name()
                .map_or(p.clone(), |n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    std::iter::once(program)
        .chain(args.map(|a| {
            if a.is_empty() || a.contains(char::is_whitespace) {
                format!("'{a}'")
            } else {
                a
            }
        }))
        // A newline would end the record early.
        .map(|a| a.replace('\n', " "))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Held for a whole operation; released when dropped (or when the process dies).
pub struct OperationLock {
    file: Flock<File>,
    path: PathBuf,
}

impl fmt::Debug for OperationLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperationLock")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The longest pause between two attempts while waiting. Short enough that a waiter notices a
/// release quickly, long enough not to spin.
const MAX_POLL: Duration = Duration::from_millis(50);

impl OperationLock {
    /// Takes the exclusive lock of `state_dir` (creating the directory 0700 and the lock file 0600
    /// if needed), waiting at most `timeout` for another holder. `Duration::ZERO` tries once.
    ///
    /// flock is per open file, so a second `acquire` in the same process waits for the first like
    /// any other process would.
    pub fn acquire(state_dir: &Path, timeout: Duration) -> Result<OperationLock, LockError> {
        ensure_state_dir(state_dir)?;
        let path = state_dir.join(LOCK_FILE);
        let mut file = open_private_file(&path).map_err(|source| LockError::Open {
            path: path.clone(),
            source,
        })?;
        ensure_mode(&path, FILE_MODE)?;
        let started = Instant::now();
        let mut pause = Duration::from_millis(2);
        let mut announced = false;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(locked) => {
                    let lock = OperationLock { file: locked, path };
                    lock.record_holder()?;
                    return Ok(lock);
                }
                Err((f, Errno::EWOULDBLOCK | Errno::EINTR)) => file = f,
                Err((_, source)) => return Err(LockError::Lock { path, source }),
            }
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(LockError::Timeout {
                    holder: read_holder(&path),
                    path,
                    waited: timeout,
                });
            }
            if !announced {
                announced = true;
                let holder =
                    read_holder(&path).map_or_else(|| "unknown".to_owned(), |h| h.to_string());
                tracing::info!(%holder, lock = %path.display(), "waiting for the state lock");
            }
            // Jitter keeps a crowd of waiters from retrying in lockstep.
            let jitter = Duration::from_micros(rand::rng().random_range(0..1000));
            std::thread::sleep((pause + jitter).min(timeout.saturating_sub(waited)));
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record_holder(&self) -> Result<(), LockError> {
        let err = |source| LockError::RecordHolder {
            path: self.path.clone(),
            source,
        };
        let file: &File = &self.file;
        file.set_len(0).map_err(err)?;
        file.write_all_at(LockHolder::current().encode().as_bytes(), 0)
            .map_err(err)?;
        (&*file).flush().map_err(err)
    }
}

impl Drop for OperationLock {
    fn drop(&mut self) {
        // Still holding the lock: clear the holder so the file never names a process that has
        // let go. Best effort: a stale name only makes a later message less exact.
        if let Err(e) = self.file.set_len(0) {
            tracing::debug!(lock = %self.path.display(), error = %e, "clearing the lock holder");
        }
        // Dropping `file` unlocks and closes.
    }
}

/// Who holds the lock according to the lock file, if it names anyone.
pub fn read_holder(path: &Path) -> Option<LockHolder> {
    // Reading through a second descriptor is safe with flock: closing it does not release a
    // lock held through another descriptor (unlike POSIX record locks).
    let text = std::fs::read_to_string(path).ok()?;
    LockHolder::decode(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_round_trips() {
        let h = LockHolder {
            pid: 42,
            command: "netctl apply -f x.toml".into(),
        };
        assert_eq!(LockHolder::decode(&h.encode()), Some(h));
        assert_eq!(LockHolder::decode(""), None);
        assert_eq!(LockHolder::decode("abc\n"), None);
    }

    #[test]
    fn lock_records_and_clears_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let lock = OperationLock::acquire(&state, Duration::ZERO).unwrap();
        let holder = read_holder(lock.path()).unwrap();
        assert_eq!(holder.pid, std::process::id());
        assert!(!holder.command.is_empty());
        let path = lock.path().to_owned();
        drop(lock);
        assert_eq!(read_holder(&path), None);
        // and it can be taken again
        OperationLock::acquire(&state, Duration::ZERO).unwrap();
    }

    #[test]
    fn second_acquire_times_out_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let _held = OperationLock::acquire(dir.path(), Duration::ZERO).unwrap();
        let started = Instant::now();
        let err = OperationLock::acquire(dir.path(), Duration::from_millis(200)).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(started.elapsed() < Duration::from_secs(5));
        let LockError::Timeout { holder, .. } = &err else {
            panic!("unexpected error {err:?}");
        };
        assert_eq!(holder.as_ref().unwrap().pid, std::process::id());
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("state is locked by pid {} (", std::process::id())),
            "{text}"
        );
        assert!(text.contains("gave up after 0.2s waiting for"), "{text}");
    }

    #[test]
    fn waiter_gets_the_lock_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let held = OperationLock::acquire(dir.path(), Duration::ZERO).unwrap();
        let path = dir.path().to_owned();
        let waiter =
            std::thread::spawn(move || OperationLock::acquire(&path, Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(100));
        drop(held);
        let got = waiter.join().unwrap().unwrap();
        assert_eq!(read_holder(got.path()).unwrap().pid, std::process::id());
    }

    #[test]
    fn timeout_message_without_a_recorded_holder() {
        let err = LockError::Timeout {
            path: "/var/lib/netctl/netctl.lock".into(),
            waited: Duration::from_secs(10),
            holder: None,
        };
        assert_eq!(
            err.to_string(),
            "state is locked by another process; gave up after 10s waiting for /var/lib/netctl/netctl.lock"
        );
    }
}

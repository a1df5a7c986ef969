//! Stopping a helper process netctl started: `SIGTERM`, a bounded wait, then `SIGKILL`.
//!
//! Invariant: a signal is only ever sent to the process recorded as (pid, start time). Before
//! each signal the pair is checked again, so a pid the kernel recycled for some other program
//! after the helper exited is never signalled.

use std::time::{Duration, Instant};

use crate::{Processes, Signal, SysError, SysResult};

/// How long [`terminate`] waits for a process to disappear after `SIGKILL`.
pub const KILL_WAIT: Duration = Duration::from_secs(2);

/// How often [`terminate`] looks whether the process has gone.
const POLL: Duration = Duration::from_millis(10);

/// How [`terminate`] ended a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Termination {
    /// It had already exited (or the pid now belongs to another process): nothing was sent.
    AlreadyGone,
    /// It exited after `SIGTERM`, within the grace period.
    Terminated,
    /// It ignored `SIGTERM` for the whole grace period and was killed.
    Killed,
}

/// Stops the process `pid` that started at `start_time`: `SIGTERM`, up to `grace` for it to
/// exit, then `SIGKILL` and up to [`KILL_WAIT`] more. Safe to call for a process that is
/// already gone. Fails only if a signal cannot be sent for another reason than the process
/// having exited, or if the process survives `SIGKILL`.
pub fn terminate<P: Processes + ?Sized>(
    procs: &P,
    pid: u32,
    start_time: u64,
    grace: Duration,
) -> SysResult<Termination> {
    if !procs.is_alive(pid, start_time) {
        return Ok(Termination::AlreadyGone);
    }
    if !signal(procs, pid, Signal::SIGTERM)? {
        return Ok(Termination::AlreadyGone);
    }
    if wait_gone(procs, pid, start_time, grace) {
        return Ok(Termination::Terminated);
    }
    // Checked again right before: the pid must still be the same process.
    if !procs.is_alive(pid, start_time) || !signal(procs, pid, Signal::SIGKILL)? {
        return Ok(Termination::Terminated);
    }
    if wait_gone(procs, pid, start_time, KILL_WAIT) {
        Ok(Termination::Killed)
    } else {
        Err(SysError::StillRunning {
            pid,
            waited: KILL_WAIT,
        })
    }
}

/// Sends `signal`; `Ok(false)` when the process exited in the meantime.
fn signal<P: Processes + ?Sized>(procs: &P, pid: u32, signal: Signal) -> SysResult<bool> {
    match procs.kill(pid, signal) {
        Ok(()) => Ok(true),
        Err(err) if err.is_not_found() => Ok(false),
        Err(err) => Err(err),
    }
}

/// Waits up to `limit` for the process to have gone; whether it has.
fn wait_gone<P: Processes + ?Sized>(procs: &P, pid: u32, start_time: u64, limit: Duration) -> bool {
    let started = Instant::now();
    loop {
        if !procs.is_alive(pid, start_time) {
            return true;
        }
        if started.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// While held, `SIGINT`, `SIGTERM` and `SIGHUP` wait: a Ctrl-C or a `systemctl stop` that
/// arrives while netctl changes the machine takes effect when the change is finished (or
/// rolled back) and the guard is dropped, not half-way through it. (A `SIGKILL` cannot wait;
/// the pending-operation marker covers that.)
///
/// The signals are blocked for the calling thread and the threads it starts while it holds the
/// guard; programs it runs start with an empty mask (the standard library resets it).
#[derive(Debug)]
pub struct DeferredTermination {
    old: nix::sys::signal::SigSet,
}

/// Blocks the termination signals until the returned guard is dropped.
pub fn defer_termination() -> DeferredTermination {
    use nix::sys::signal::{SigSet, SigmaskHow, pthread_sigmask};
    let mut set = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(signal);
    }
    let mut old = SigSet::empty();
    // Cannot fail with a valid `how` and set.
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old));
    DeferredTermination { old }
}

impl Drop for DeferredTermination {
    fn drop(&mut self) {
        use nix::sys::signal::{SigmaskHow, pthread_sigmask};
        // A signal that came meanwhile is delivered now.
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

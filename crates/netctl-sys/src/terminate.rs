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
/// The signals are caught, not blocked: a blocked mask would be inherited by the helpers
/// netctl starts (pasta would then ignore the `SIGTERM` that stops it), where a caught signal
/// is reset to its default action by `exec`.
#[derive(Debug)]
pub struct DeferredTermination {
    caught: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    handlers: Vec<signal_hook::SigId>,
}

/// The signals [`defer_termination`] holds back.
const TERMINATION: [i32; 3] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
];

/// Holds the termination signals back until the returned guard is dropped.
pub fn defer_termination() -> DeferredTermination {
    let caught = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handlers = TERMINATION
        .iter()
        .filter_map(|&signal| {
            let value = usize::try_from(signal).expect("signal numbers are small");
            signal_hook::flag::register_usize(signal, std::sync::Arc::clone(&caught), value).ok()
        })
        .collect();
    DeferredTermination { caught, handlers }
}

impl Drop for DeferredTermination {
    fn drop(&mut self) {
        for id in self.handlers.drain(..) {
            signal_hook::low_level::unregister(id);
        }
        // A signal that came meanwhile takes effect now, as it would have then.
        let signal = self.caught.load(std::sync::atomic::Ordering::SeqCst);
        if signal != 0
            && let Ok(signal) = i32::try_from(signal)
        {
            let _ = signal_hook::low_level::emulate_default_handler(signal);
        }
    }
}

//! Spreading independent per-namespace work over a few threads.
//!
//! Observing a thousand containers is a thousand small, independent kernel conversations; on
//! a machine with several CPUs they need not wait for each other. The work is split into one
//! contiguous chunk per thread (at most [`MAX_THREADS`], and none for small inputs, where a
//! thread costs more than it saves); results come back in input order.

/// Threads at most, whatever the CPU count.
pub const MAX_THREADS: usize = 8;
/// Fewer items than this per thread are not worth a thread.
const MIN_PER_THREAD: usize = 32;

/// How many threads `items` are worth.
fn threads_for(items: usize) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    cpus.min(MAX_THREADS).min(items / MIN_PER_THREAD).max(1)
}

/// Runs `work` on contiguous chunks of `items`, in parallel when there are enough of them, and
/// concatenates the results in order. A panic in `work` is resumed in the caller.
pub fn map_chunks<T: Sync, R: Send>(items: &[T], work: impl Fn(&[T]) -> Vec<R> + Sync) -> Vec<R> {
    let threads = threads_for(items.len());
    if threads == 1 {
        return work(items);
    }
    spawned(items, threads, work)
}

/// Like [`map_chunks`], but never on the calling thread: for work that changes the state of
/// the thread it runs on (entering a network namespace), which the caller's thread must not
/// see.
pub fn map_chunks_off_thread<T: Sync, R: Send>(
    items: &[T],
    work: impl Fn(&[T]) -> Vec<R> + Sync,
) -> Vec<R> {
    if items.is_empty() {
        return Vec::new();
    }
    spawned(items, threads_for(items.len()), work)
}

fn spawned<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    work: impl Fn(&[T]) -> Vec<R> + Sync,
) -> Vec<R> {
    let size = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(size)
            .map(|chunk| scope.spawn(|| work(chunk)))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// `map_chunks` one item at a time.
pub fn map<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    map_chunks(items, |chunk| chunk.iter().map(&work).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_input_order_and_every_item_is_done_once() {
        let items: Vec<usize> = (0..1000).collect();
        let out = map(&items, |i| i * 2);
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(map(&items[..3], |i| i + 1), vec![1, 2, 3]);
        assert!(map(&Vec::<u8>::new(), |i| *i).is_empty());
    }

    #[test]
    fn off_thread_work_never_runs_on_the_calling_thread() {
        let me = std::thread::current().id();
        for n in [1, 5, 1000] {
            let items: Vec<usize> = (0..n).collect();
            let ids = map_chunks_off_thread(&items, |chunk| {
                chunk.iter().map(|_| std::thread::current().id()).collect()
            });
            assert_eq!(ids.len(), n);
            assert!(ids.iter().all(|id| *id != me), "n = {n}");
        }
    }

    #[test]
    fn a_panic_reaches_the_caller() {
        let items: Vec<usize> = (0..1000).collect();
        let caught = std::panic::catch_unwind(|| {
            map(&items, |i| assert_ne!(*i, 999, "boom"));
        });
        assert!(caught.is_err());
    }
}

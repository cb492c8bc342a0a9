//! Work over migration files on every core: files parse independently,
//! and PostgreSQL's parser keeps its state per thread.

/// `f` over `items`, in their order, on up to as many threads as the
/// machine has cores: migration files parse independently, and
/// PostgreSQL's parser keeps its state per thread. Each thread takes the
/// next file when it is done with one, so one long file does not hold up
/// the rest; one file, or one core, runs on the calling thread.
pub fn in_parallel<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = cores.min(items.len()).min(8);
    if workers <= 1 {
        return items.into_iter().map(f).collect();
    }
    let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let next = AtomicUsize::new(0);
    let take = |i: usize| slots[i].lock().unwrap_or_else(|e| e.into_inner()).take();
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= slots.len() {
                return done;
            }
            if let Some(item) = take(i) {
                done.push((i, f(item)));
            }
        }
    };
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        // The parser's trees are deep: each thread gets the main thread's
        // stack size. A thread that cannot start leaves its share to the
        // others and to the calling thread.
        let handles: Vec<_> = (1..workers)
            .filter_map(|_| {
                std::thread::Builder::new().stack_size(8 << 20).spawn_scoped(scope, work).ok()
            })
            .collect();
        let mut all = work();
        for h in handles {
            all.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        all
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::in_parallel;

    #[test]
    fn every_item_is_done_once_and_the_order_kept() {
        let items: Vec<usize> = (0..1000).collect();
        let out = in_parallel(items, |i| {
            // Uneven work, so that threads finish out of order.
            let spin = if i % 97 == 0 { 20_000 } else { 10 };
            (0..spin).fold(i, |acc, _| std::hint::black_box(acc))
        });
        assert_eq!(out, (0..1000).collect::<Vec<_>>());
        assert_eq!(in_parallel(Vec::<u8>::new(), |x| x), Vec::<u8>::new());
        assert_eq!(in_parallel(vec!["one"], str::len), [3]);
    }
}

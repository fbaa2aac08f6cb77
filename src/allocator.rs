//! The global allocator: plain mimalloc, transparent huge pages off, and each worker thread's
//! heap collected once the worker goes quiet after work (`collect_when_quiet`), so that memory
//! freed by connections that parked is returned within a tick rather than whenever mimalloc
//! next purges.
//!
//! A separate heap for connections' long-lived state was measured against this and dropped: on
//! 8 000 idle HTTP/1.1 connections it saved nothing (1.62–1.65 KiB per connection with it,
//! 1.55–1.65 without; `loadtest/RESULTS.md`, "Idle memory").

use libmimalloc_sys as ffi;
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// Turns transparent huge pages off for this process unless `MIMALLOC_ALLOW_THP` is set (then
/// mimalloc's own handling applies). With THP on (`madvise` mode, as on this box, is enough:
/// mimalloc asks for them), the kernel backs a sparsely used 2 MiB stretch of the heap with a
/// whole huge page and khugepaged collapses more while the process idles: 10 000 idle HTTP/1.1
/// connections read 5.0 to 13 KiB each depending on when khugepaged last ran, and 3.7 KiB with
/// THP off; an idle process is 15 MB resident instead of 3 MB.
pub fn init() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: a process-wide flag; no pointers are passed.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}

/// The process's global allocator (`#[global_allocator]` in `main.rs`): mimalloc's plain entry
/// points where their 16-byte alignment suffices (as std's `System` does with malloc), its aligned
/// ones otherwise. mimalloc 3 serves an aligned request above 1 KiB whose size is not a power of
/// two by over-allocating: hyper's 8 KiB read buffers and the like took that path ~3 times per
/// proxied request, ~900 instructions under callgrind.
pub struct Allocator;

/// What `mi_malloc` aligns every block to (`MI_MAX_ALIGN_SIZE`).
const PLAIN_ALIGN: usize = 16;

/// Whether the plain entry points give `align` for a block of `size` (a block smaller than its
/// alignment may come from a size class aligned only to its size).
#[inline]
fn plain(size: usize, align: usize) -> bool {
    align <= PLAIN_ALIGN && align <= size
}

// SAFETY: every path hands mimalloc the layout's size, and its alignment unless the plain entry
// points already guarantee it; they return null on failure, and every block is one `mi_free`
// accepts.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if plain(layout.size(), layout.align()) {
            unsafe { ffi::mi_malloc(layout.size()) as *mut u8 }
        } else {
            unsafe { ffi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8 }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if plain(layout.size(), layout.align()) {
            unsafe { ffi::mi_zalloc(layout.size()) as *mut u8 }
        } else {
            unsafe { ffi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8 }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        unsafe { ffi::mi_free(ptr as *mut c_void) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if plain(new_size, layout.align()) {
            unsafe { ffi::mi_realloc(ptr as *mut c_void, new_size) as *mut u8 }
        } else {
            unsafe { ffi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8 }
        }
    }
}

/// CPU time per [`HOUSEKEEPING_TICK`](switchyard::workers::HOUSEKEEPING_TICK) from which a worker
/// counts as busy (2 % of the tick): no collect then, the allocator's own purging keeps up.
const BUSY_CPU_NS: u64 = 2_000_000;
/// CPU time per tick above the tick's own cost (tens of µs): the worker did something, such as
/// parking a few connections, and may have freed pages.
const ACTIVE_CPU_NS: u64 = 100_000;

thread_local! {
    /// This thread's CPU time at its last tick, and whether it was busy since its last collect.
    static QUIET: std::cell::Cell<(u64, bool)> = const { std::cell::Cell::new((0, false)) };
}

/// The workers' housekeeping hook (`workers::set_housekeeping`): on a tick that is not busy but
/// follows work, force this thread's heap to return what it holds free. mimalloc hands freed
/// pages back to the OS only `purge_delay` (1 s) after they were freed *and* on a later
/// allocation or collect by some thread; a worker that goes quiet once its connections have
/// parked makes no such call, so the parked connections' freed buffers stayed resident for 4 to
/// 20 s after the last request, depending on when something next allocated. A forced collect
/// purges at once; it never runs while the thread is busy.
pub fn collect_when_quiet() {
    let now = thread_cpu_ns();
    let (last, busy_before) = QUIET.with(|q| q.get());
    let (collect_now, busy) = decide(now.saturating_sub(last), busy_before);
    if collect_now {
        collect();
    }
    // The collect's own CPU time does not count as work.
    QUIET.with(|q| q.set((if collect_now { thread_cpu_ns() } else { now }, busy)));
}

/// One tick's decision from the CPU time the thread used since the last tick and whether it was
/// busy before: (collect now, busy since the last collect).
fn decide(used_ns: u64, busy_before: bool) -> (bool, bool) {
    if used_ns >= BUSY_CPU_NS {
        return (false, true);
    }
    (busy_before || used_ns >= ACTIVE_CPU_NS, false)
}

/// Returns the calling thread's free pages to the OS now (a forced collect purges at once,
/// whatever `purge_delay` says).
fn collect() {
    // SAFETY: collects the calling thread's own heap; no pointers are passed.
    unsafe { ffi::mi_collect(true) }
}

/// CPU time this thread has used, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid timespec the call writes.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            return ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_grow_keep_their_contents_and_free() {
        let a = Allocator;
        let layout = Layout::from_size_align(48, 16).unwrap();
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null() && (p as usize).is_multiple_of(16));
            p.write_bytes(7, 48);
            let q = a.realloc(p, layout, 4096);
            assert_eq!(*q.add(47), 7);
            a.dealloc(q, Layout::from_size_align(4096, 16).unwrap());
            let z = a.alloc_zeroed(layout);
            assert!((0..48).all(|i| *z.add(i) == 0));
            a.dealloc(z, layout);
        }
    }

    #[test]
    fn every_block_has_its_layouts_alignment_on_either_path() {
        let a = Allocator;
        // Plain (align <= 16 and <= size), and aligned: over 16, or larger than the size.
        for (size, align) in [(8192, 1), (3000, 8), (24, 16), (4, 8), (1, 16), (64, 128), (5000, 4096)] {
            let layout = Layout::from_size_align(size, align).unwrap();
            unsafe {
                let p = a.alloc(layout);
                assert!(!p.is_null() && (p as usize).is_multiple_of(align), "{size} {align}");
                let q = a.realloc(p, layout, size * 3);
                assert!(!q.is_null() && (q as usize).is_multiple_of(align), "{size} {align} grown");
                a.dealloc(q, Layout::from_size_align(size * 3, align).unwrap());
                let z = a.alloc_zeroed(layout);
                assert!((z as usize).is_multiple_of(align) && (0..size).all(|i| *z.add(i) == 0));
                a.dealloc(z, layout);
            }
        }
    }

    #[test]
    fn collects_on_the_first_tick_that_is_not_busy_after_work_and_never_while_busy() {
        // Busy ticks never collect, however long the work lasts.
        assert_eq!(decide(BUSY_CPU_NS, false), (false, true));
        assert_eq!(decide(50 * BUSY_CPU_NS, true), (false, true));
        // The first tick after work that is not busy collects (work tailing off included).
        assert_eq!(decide(0, true), (true, false));
        assert_eq!(decide(BUSY_CPU_NS - 1, true), (true, false));
        // A little work on its own (a few connections parking) collects too.
        assert_eq!(decide(ACTIVE_CPU_NS, false), (true, false));
        // An idle tick (the tick's own cost) does nothing.
        assert_eq!(decide(ACTIVE_CPU_NS - 1, false), (false, false));
        assert_eq!(decide(0, false), (false, false));
    }

    #[test]
    fn a_thread_s_cpu_clock_moves_with_its_work() {
        let start = thread_cpu_ns();
        while thread_cpu_ns() - start < ACTIVE_CPU_NS {}
        assert!(thread_cpu_ns() > start);
        // Collecting with nothing to return is harmless.
        collect_when_quiet();
        collect_when_quiet();
    }
}

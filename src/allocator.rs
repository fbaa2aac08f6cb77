//! The global allocator: mimalloc, with what `switchyard::memory` marks as long-lived (a
//! connection's lasting state) on a heap of its own, so that the pages the request path
//! churns hold nothing that outlives a request and can all be returned (issue 15: resident
//! memory per idle connection; see `memory` for the measurement).
//!
//! Every block, from either heap, is freed by `mi_free` from any thread; a long-lived block
//! grown outside the marker moves to the default heap.

use libmimalloc_sys::{self as ffi, mi_heap_t};
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use switchyard::memory::long_lived_now;

/// mimalloc's heaps are first-class (v3): one heap serves every thread.
static HEAP: AtomicPtr<mi_heap_t> = AtomicPtr::new(ptr::null_mut());

/// Turns transparent huge pages off for this process unless `MIMALLOC_ALLOW_THP` is set (then
/// mimalloc's own handling applies). With THP on (`madvise` mode, as on this box, is enough:
/// mimalloc asks for them), the kernel backs a sparsely used 2 MiB stretch of the heap with a
/// whole huge page and khugepaged collapses more while the process idles: 10 000 idle HTTP/1.1
/// connections read 5.0 to 13 KiB each depending on when khugepaged last ran, and 3.7 KiB with
/// THP off; an idle process is 15 MB resident instead of 3 MB (issue 15).
pub fn init() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: a process-wide flag; no pointers are passed.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}

/// Temporary measurement knob: `SWITCHYARD_ALLOC=plain` ignores the long-lived marker.
static USE_HEAP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

pub fn init_knob() {
    if std::env::var("SWITCHYARD_ALLOC").as_deref() == Ok("plain") {
        USE_HEAP.store(false, Ordering::Relaxed);
    }
}

#[inline]
fn long_lived_on() -> bool {
    long_lived_now() && USE_HEAP.load(Ordering::Relaxed)
}

/// The process's global allocator (`#[global_allocator]` in `main.rs`).
pub struct Allocator;

fn heap() -> *mut mi_heap_t {
    let h = HEAP.load(Ordering::Acquire);
    if !h.is_null() {
        return h;
    }
    // SAFETY: creating a heap has no preconditions; a racing loser hands its (empty) heap back.
    let new = unsafe { ffi::mi_heap_new() };
    match HEAP.compare_exchange(ptr::null_mut(), new, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => new,
        Err(won) => {
            unsafe { ffi::mi_heap_delete(new) };
            won
        }
    }
}

// SAFETY: every path hands the layout's size and alignment to mimalloc's aligned entry points,
// which return null on failure, and every block (from either heap) is one `mi_free` accepts.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if long_lived_on() {
            return unsafe { ffi::mi_heap_malloc_aligned(heap(), layout.size(), layout.align()) as *mut u8 };
        }
        unsafe { ffi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8 }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if long_lived_on() {
            return unsafe { ffi::mi_heap_zalloc_aligned(heap(), layout.size(), layout.align()) as *mut u8 };
        }
        unsafe { ffi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8 }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        unsafe { ffi::mi_free(ptr as *mut c_void) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if long_lived_on() {
            let h = heap();
            return unsafe { ffi::mi_heap_realloc_aligned(h, ptr as *mut c_void, new_size, layout.align()) as *mut u8 };
        }
        unsafe { ffi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8 }
    }
}

/// CPU time below which a worker's [`HOUSEKEEPING_TICK`](switchyard::workers::HOUSEKEEPING_TICK)
/// counts as quiet (2 % of the tick; the control loop and health probes of a one-thread process
/// stay under it).
const QUIET_CPU_NS: u64 = 2_000_000;

thread_local! {
    /// This thread's CPU time at its last tick, and whether it worked since its last collect.
    static QUIET: std::cell::Cell<(u64, bool)> = const { std::cell::Cell::new((0, false)) };
}

/// The workers' housekeeping hook (`workers::set_housekeeping`): on the first quiet tick after
/// work, force this thread's heaps to return what they hold free. mimalloc hands freed pages back
/// to the OS only `purge_delay` (1 s) after they were freed *and* on a later allocation or collect
/// by some thread; a worker that goes quiet once its connections have parked makes no such call,
/// so the parked connections' freed buffers (18 KiB each) stayed resident for 8 s or more in 5
/// of 13 runs. A forced collect purges at once; it runs at most once per quiet spell, never
/// while the thread is busy.
pub fn collect_when_quiet() {
    let now = thread_cpu_ns();
    let (last, worked) = QUIET.with(|q| q.get());
    if now.saturating_sub(last) >= QUIET_CPU_NS {
        QUIET.with(|q| q.set((now, true)));
        return;
    }
    if worked {
        // SAFETY: collects the calling thread's own heaps; no pointers are passed.
        unsafe {
            ffi::mi_collect(true);
            if USE_HEAP.load(Ordering::Relaxed) {
                ffi::mi_heap_collect(heap(), true);
            }
        }
    }
    // The collect's own CPU time does not count as work.
    QUIET.with(|q| q.set((thread_cpu_ns(), false)));
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

/// `SWITCHYARD_HEAP_REPORT=<seconds>`: every so often, print to stderr what both heaps hold,
/// by block size (live blocks, bytes, committed). This is how the per-connection table in
/// `loadtest/RESULTS.md` ("Where the bytes go") was read; `loadtest/idle_watch` sets it.
pub fn start_heap_report() {
    let Some(secs) = std::env::var("SWITCHYARD_HEAP_REPORT").ok().and_then(|s| s.parse::<u64>().ok()) else {
        return;
    };
    std::thread::spawn(move || loop {
        std::thread::sleep(std::time::Duration::from_secs(secs.max(1)));
        report::print("long-lived", heap());
        // SAFETY: no arguments; the main heap always exists.
        report::print("default", unsafe { report::mi_heap_main() });
    });
}

mod report {
    use super::*;
    use std::collections::BTreeMap;

    /// mimalloc v3's `mi_heap_area_t` (the bindings carry v2's, which differs).
    #[repr(C)]
    struct Area {
        blocks: *mut c_void,
        reserved: usize,
        committed: usize,
        used: usize,
        block_size: usize,
        full_block_size: usize,
        reserved1: *mut c_void,
    }

    type Visitor = unsafe extern "C" fn(*const mi_heap_t, *const Area, *mut c_void, usize, *mut c_void) -> bool;

    extern "C" {
        fn mi_heap_visit_blocks(heap: *mut mi_heap_t, visit_blocks: bool, visitor: Visitor, arg: *mut c_void) -> bool;
        pub(super) fn mi_heap_main() -> *mut mi_heap_t;
    }

    /// Per block size: live blocks, committed bytes.
    type Sizes = BTreeMap<usize, (usize, usize)>;

    unsafe extern "C" fn area(_: *const mi_heap_t, a: *const Area, _: *mut c_void, _: usize, arg: *mut c_void) -> bool {
        // SAFETY: mimalloc passes a valid area; `arg` is the `Sizes` handed to the walk below.
        let (a, sizes) = unsafe { (&*a, &mut *(arg as *mut Sizes)) };
        let e = sizes.entry(a.block_size).or_default();
        e.0 += a.used;
        e.1 += a.committed;
        true
    }

    pub(super) fn print(name: &str, heap: *mut mi_heap_t) {
        let mut sizes = Sizes::new();
        // SAFETY: areas only (no block visits); the visitor matches mimalloc's signature.
        unsafe { mi_heap_visit_blocks(heap, false, area, &mut sizes as *mut Sizes as *mut c_void) };
        let live: usize = sizes.iter().map(|(size, (n, _))| size * n).sum();
        let committed: usize = sizes.values().map(|(_, c)| c).sum();
        let mut rows: Vec<_> = sizes.into_iter().filter(|(_, (n, _))| *n > 0).collect();
        rows.sort_by_key(|(size, (n, _))| std::cmp::Reverse(size * n));
        let mut out = format!("heap {name}: {} KiB live, {} KiB committed\n", live / 1024, committed / 1024);
        for (size, (n, c)) in rows.into_iter().take(10) {
            out +=
                &format!("  {size:>7} B x {n:>7} = {:>7} KiB live, {:>7} KiB committed\n", size * n / 1024, c / 1024);
        }
        eprint!("{out}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard::memory::long_lived;

    extern "C" {
        // mimalloc v3's name; the bindings carry v2's `mi_heap_contains_block`.
        fn mi_heap_contains(heap: *const mi_heap_t, p: *const c_void) -> bool;
    }

    #[test]
    fn blocks_of_both_heaps_grow_and_free_through_the_allocator() {
        let a = Allocator;
        let layout = Layout::from_size_align(48, 16).unwrap();
        unsafe {
            let p = long_lived(|| a.alloc(layout));
            assert!(!p.is_null() && (p as usize).is_multiple_of(16));
            assert!(mi_heap_contains(heap(), p as *const c_void));
            p.write_bytes(7, 48);
            // Grown outside the marker: moved to the default heap, contents kept.
            let q = a.realloc(p, layout, 4096);
            assert_eq!(*q.add(47), 7);
            assert!(!mi_heap_contains(heap(), q as *const c_void));
            a.dealloc(q, Layout::from_size_align(4096, 16).unwrap());
            let z = long_lived(|| a.alloc_zeroed(layout));
            assert!((0..48).all(|i| *z.add(i) == 0));
            a.dealloc(z, layout);
        }
    }
}

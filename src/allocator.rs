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
        if long_lived_now() {
            return unsafe { ffi::mi_heap_malloc_aligned(heap(), layout.size(), layout.align()) as *mut u8 };
        }
        unsafe { ffi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8 }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if long_lived_now() {
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
        if long_lived_now() {
            let h = heap();
            return unsafe { ffi::mi_heap_realloc_aligned(h, ptr as *mut c_void, new_size, layout.align()) as *mut u8 };
        }
        unsafe { ffi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8 }
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

//! The plugin's global allocator: a call arena in front of the system allocator.
//!
//! A plugin call allocates a few small buffers (its arguments, the decoded command,
//! the encoded events and state, its results) and frees every one of them by the
//! time the host has read the results. [`CallArena`] serves such allocations by
//! bumping a pointer through one block, and rewinds to the block's start whenever
//! no allocation in it is live. Allocations that do not fit, and everything once
//! the block is full, go to the system allocator (dlmalloc on `wasm32-wasip2`), so
//! an allocation that outlives its call (a cache in a `static`, say) costs only the
//! arena's speed until it is freed, never correctness.
//!
//! On the bank-account plugin this cuts a `decide` call by about a seventh
//! (`engine_measure`; see docs/decisions/006-sdk-call-arena.md). It is the global
//! allocator of every plugin built with the SDK's default `call-arena` feature; turn
//! the feature off to choose another one.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Bytes of the arena's block (taken from the system allocator at the first
/// allocation).
pub const ARENA_BYTES: usize = 64 * 1024;

/// Alignment of the arena's block; larger alignments go to the system allocator.
const BLOCK_ALIGN: usize = 16;

/// A bump allocator over one block that rewinds when nothing in it is live; see the
/// [module documentation](self).
///
/// It keeps its bookkeeping in [`Cell`]s, so it is only `Sync` (and usable as the
/// global allocator) where there is a single thread: wasm without the atomics
/// feature.
pub struct CallArena {
    /// Start of the block; 0 until the first allocation.
    start: Cell<usize>,
    /// Next free byte of the block.
    next: Cell<usize>,
    /// Allocations in the block not yet freed.
    live: Cell<usize>,
}

impl CallArena {
    /// An arena whose block is taken at its first allocation.
    pub const fn new() -> Self {
        Self {
            start: Cell::new(0),
            next: Cell::new(0),
            live: Cell::new(0),
        }
    }

    /// Whether `ptr` points into the block.
    fn owns(&self, ptr: *mut u8) -> bool {
        let start = self.start.get();
        start != 0 && (ptr as usize).wrapping_sub(start) < ARENA_BYTES
    }

    /// Whether `[offset, offset + size)` of the block lies inside it. Offsets, not
    /// addresses: on wasm32 a block at the top of memory ends at 2^32, which a `usize`
    /// cannot hold.
    fn fits(offset: usize, size: usize) -> bool {
        offset
            .checked_add(size)
            .is_some_and(|end| end <= ARENA_BYTES)
    }

    /// Takes the block from the system allocator if not done yet; false if it
    /// could not be had.
    fn ensure_block(&self) -> bool {
        if self.start.get() != 0 {
            return true;
        }
        let layout = Layout::from_size_align(ARENA_BYTES, BLOCK_ALIGN).expect("a valid layout");
        // SAFETY: the layout has a non-zero size.
        let block = unsafe { System.alloc(layout) };
        if block.is_null() {
            return false;
        }
        self.start.set(block as usize);
        self.next.set(block as usize);
        true
    }

    /// Bumps out `layout` from the block, or null if it does not fit.
    fn bump(&self, layout: Layout) -> *mut u8 {
        if layout.align() > BLOCK_ALIGN || !self.ensure_block() {
            return std::ptr::null_mut();
        }
        let start = self.start.get();
        let offset = self
            .next
            .get()
            .wrapping_sub(start)
            .next_multiple_of(layout.align());
        if !Self::fits(offset, layout.size()) {
            return std::ptr::null_mut();
        }
        let begin = start.wrapping_add(offset);
        // `begin + size` is at most the block's end; the block's end itself is only
        // stored as `next` when the block is full, and is then never dereferenced.
        self.next.set(begin.wrapping_add(layout.size()));
        self.live.set(self.live.get() + 1);
        begin as *mut u8
    }

    /// Frees an allocation of the block: the last one gives its bytes back, and the
    /// block rewinds when nothing in it is live.
    fn release(&self, ptr: *mut u8, size: usize) {
        let live = self.live.get() - 1;
        self.live.set(live);
        if live == 0 {
            self.next.set(self.start.get());
        } else if (ptr as usize).wrapping_add(size) == self.next.get() {
            self.next.set(ptr as usize);
        }
    }
}

impl Default for CallArena {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: only where there is one thread (see the type's documentation).
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
unsafe impl Sync for CallArena {}

// SAFETY: every pointer handed out is either a fresh, suitably aligned range of the
// block that no live allocation overlaps (the block only rewinds past freed
// allocations), or comes from `System`, to which it is returned.
unsafe impl GlobalAlloc for CallArena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = self.bump(layout);
        if ptr.is_null() {
            // SAFETY: the caller's contract (a non-zero-sized layout) is passed on.
            unsafe { System.alloc(layout) }
        } else {
            ptr
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = self.bump(layout);
        if ptr.is_null() {
            // SAFETY: as in `alloc`.
            unsafe { System.alloc_zeroed(layout) }
        } else {
            // SAFETY: `ptr` is `layout.size()` bytes of the block, owned by the caller.
            unsafe { ptr.write_bytes(0, layout.size()) };
            ptr
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.owns(ptr) {
            self.release(ptr, layout.size());
        } else {
            // SAFETY: not the block's, so `System` allocated it with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.owns(ptr) {
            // SAFETY: `System` allocated it with this layout.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let address = ptr as usize;
        let is_last = address.wrapping_add(layout.size()) == self.next.get();
        if is_last && Self::fits(address - self.start.get(), new_size) {
            // The last allocation grows or shrinks in place.
            self.next.set(address.wrapping_add(new_size));
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: `layout.align()` is valid and `new_size` is non-zero (it exceeds
        // the old size).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a non-zero-sized layout.
        let moved = unsafe { self.alloc(new_layout) };
        if !moved.is_null() {
            // SAFETY: both ranges are valid for the old size and do not overlap
            // (`moved` is a fresh allocation).
            unsafe { std::ptr::copy_nonoverlapping(ptr, moved, layout.size()) };
            self.release(ptr, layout.size());
        }
        moved
    }
}

#[cfg(all(
    feature = "call-arena",
    target_family = "wasm",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOCATOR: CallArena = CallArena::new();

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn rewinds_when_every_allocation_is_freed() {
        let arena = CallArena::new();
        unsafe {
            let a = arena.alloc(layout(100, 8));
            let b = arena.alloc(layout(200, 8));
            assert!(arena.owns(a) && arena.owns(b));
            assert_ne!(a, b);
            arena.dealloc(a, layout(100, 8));
            // `b` is still live: nothing rewinds, so a new allocation cannot overlap it.
            let c = arena.alloc(layout(50, 8));
            assert!(c as usize >= b as usize + 200);
            arena.dealloc(b, layout(200, 8));
            arena.dealloc(c, layout(50, 8));
            // Nothing live: the next allocation starts the block again.
            let d = arena.alloc(layout(10, 8));
            assert_eq!(d, a);
            arena.dealloc(d, layout(10, 8));
        }
    }

    #[test]
    fn honours_alignment() {
        let arena = CallArena::new();
        unsafe {
            let byte = arena.alloc(layout(1, 1));
            let wide = arena.alloc(layout(8, 16));
            assert_eq!(wide as usize % 16, 0);
            assert!(wide as usize > byte as usize);
            arena.dealloc(wide, layout(8, 16));
            arena.dealloc(byte, layout(1, 1));
        }
    }

    #[test]
    fn what_does_not_fit_goes_to_the_system_allocator() {
        let arena = CallArena::new();
        unsafe {
            let big = arena.alloc(layout(ARENA_BYTES + 1, 8));
            assert!(!big.is_null() && !arena.owns(big));
            let aligned = arena.alloc(layout(8, 64));
            assert!(!aligned.is_null() && !arena.owns(aligned));
            assert_eq!(aligned as usize % 64, 0);
            // Filling the block sends the rest to the system allocator too.
            let most = arena.alloc(layout(ARENA_BYTES - 8, 8));
            assert!(arena.owns(most));
            let over = arena.alloc(layout(16, 8));
            assert!(!over.is_null() && !arena.owns(over));
            // Writes to both kinds are fine, and each goes back where it came from.
            big.write_bytes(1, ARENA_BYTES + 1);
            over.write_bytes(2, 16);
            arena.dealloc(big, layout(ARENA_BYTES + 1, 8));
            arena.dealloc(aligned, layout(8, 64));
            arena.dealloc(over, layout(16, 8));
            arena.dealloc(most, layout(ARENA_BYTES - 8, 8));
            assert_eq!(arena.live.get(), 0);
        }
    }

    #[test]
    fn reallocation_grows_the_last_allocation_in_place_and_moves_others() {
        let arena = CallArena::new();
        unsafe {
            let first = arena.alloc(layout(4, 1));
            first.copy_from_nonoverlapping(b"abcd".as_ptr(), 4);
            let grown = arena.realloc(first, layout(4, 1), 64);
            assert_eq!(grown, first);
            let second = arena.alloc(layout(4, 1));
            // `grown` is no longer the last: growing it moves it, keeping its bytes.
            let moved = arena.realloc(grown, layout(64, 1), 128);
            assert_ne!(moved, grown);
            assert_eq!(std::slice::from_raw_parts(moved, 4), b"abcd");
            assert_eq!(arena.live.get(), 2);
            arena.dealloc(second, layout(4, 1));
            arena.dealloc(moved, layout(128, 1));
            assert_eq!(arena.live.get(), 0);
            // Growing past the block moves it to the system allocator.
            let small = arena.alloc(layout(8, 8));
            let huge = arena.realloc(small, layout(8, 8), ARENA_BYTES * 2);
            assert!(!arena.owns(huge));
            arena.dealloc(huge, layout(ARENA_BYTES * 2, 8));
            assert_eq!(arena.live.get(), 0);
        }
    }

    #[test]
    fn zeroed_allocations_are_zero_after_the_block_rewinds() {
        let arena = CallArena::new();
        unsafe {
            let dirty = arena.alloc(layout(32, 8));
            dirty.write_bytes(0xAB, 32);
            arena.dealloc(dirty, layout(32, 8));
            let clean = arena.alloc_zeroed(layout(32, 8));
            assert_eq!(clean, dirty);
            assert!(
                std::slice::from_raw_parts(clean, 32)
                    .iter()
                    .all(|&b| b == 0)
            );
            arena.dealloc(clean, layout(32, 8));
        }
    }
}

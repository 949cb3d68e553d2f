//! Giving memory back to the system. A reload builds a new snapshot next to the old
//! one and then drops the old; glibc keeps most of what was freed mapped, so without
//! this the tracker's resident size would ratchet up by a snapshot's size at every
//! reload.

/// Returns the allocator's free pages to the kernel (glibc `malloc_trim`); a no-op
/// elsewhere.
pub fn release_free_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has no
    // preconditions and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Keeps glibc to one malloc arena. By default every thread that allocates may get an
/// arena of its own; freed memory then sits in whichever arena it came from, and the
/// tracker's resident size ends up half again larger than what it holds. Allocation is
/// rarely contended here (each request allocates little, and glibc serves small sizes
/// from per-thread caches without the arena lock). Call before starting any thread.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

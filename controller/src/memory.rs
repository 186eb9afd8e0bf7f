//! glibc malloc settings and trimming for processes that hold many small
//! objects for long and build large short-lived tables each round (the
//! controller and the speaker).

/// glibc malloc tuning for a process that holds many small objects for long
/// and builds large short-lived tables in each allocation round (unless
/// `MALLOC_ARENA_MAX` / `MALLOC_MMAP_THRESHOLD_` say otherwise):
///
/// - one arena: by default each thread that allocates gets its own (up to 8
///   per core) and memory freed in one cannot serve another; with the Service
///   cache filled by a runtime worker and the allocator's state built on a
///   blocking thread, 100,000 Services kept tens of MB more resident across
///   arenas than in use. The threads rarely allocate at the same moment.
/// - a fixed mmap threshold (128 KiB, glibc's starting value): without it
///   glibc raises the threshold after each large free, so the next round's
///   large tables come from the heap and leave it fragmented instead of being
///   returned to the system when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune_malloc() {
    unsafe extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    // From glibc's malloc.h.
    const M_MMAP_THRESHOLD: i32 = -3;
    const M_ARENA_MAX: i32 = -8;
    // SAFETY: mallopt only changes allocator tuning; it is called before any
    // other thread exists.
    unsafe {
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            mallopt(M_ARENA_MAX, 1);
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        }
    }
}

/// No tuning outside glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_malloc() {}

/// Hands memory freed by a round back to the system (glibc keeps free pages
/// inside its heap otherwise: a round's transient tables, outcomes and the
/// old copies of re-listed Services leave holes between long-lived objects).
/// A few milliseconds for a heap of 100 MB.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim only returns free memory to the system.
        unsafe {
            malloc_trim(0);
        }
    }
}

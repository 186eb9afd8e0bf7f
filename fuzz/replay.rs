//! Replaying a cargo-fuzz target's committed corpus in an ordinary test,
//! with the allocations each input causes measured. Shared by the crates'
//! `tests/fuzz_corpus.rs` (included with `#[path]`; see docs/FUZZING.md):
//!
//! ```ignore
//! #[path = "../../fuzz/replay.rs"]
//! mod replay;
//! ```
//!
//! The including test binary gets [`Recording`] as its global allocator.
//! It records, per thread (tests run on parallel threads), the largest
//! single allocation and the sum of all allocations, so a test can bound
//! both by the input's length: a decoder that sizes a buffer from a length
//! field, or a document that expands (YAML aliases), fails the bound.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

pub struct Recording;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static TOTAL: Cell<usize> = const { Cell::new(0) };
}

fn record(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    let _ = TOTAL.try_with(|t| t.set(t.get().saturating_add(size)));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// bookkeeping touches only const-initialised thread-local `Cell`s.
unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Recording = Recording;

/// What one input cost: the largest single allocation and all allocations
/// added up, in octets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    pub largest: usize,
    pub total: usize,
}

/// Runs `body` on `input` and returns what it allocated.
pub fn measure(body: fn(&[u8]), input: &[u8]) -> Cost {
    LARGEST.with(|l| l.set(0));
    TOTAL.with(|t| t.set(0));
    body(input);
    Cost {
        largest: LARGEST.with(Cell::get),
        total: TOTAL.with(Cell::get),
    }
}

/// A target: its name (the directory under `fuzz/corpus/`), its body, and
/// the most it may allocate for an input of a given length.
#[derive(Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    pub body: fn(&[u8]),
    /// The bound on [`Cost::largest`] for an input of this length.
    pub largest: fn(usize) -> usize,
    /// The bound on [`Cost::total`] for an input of this length.
    pub total: fn(usize) -> usize,
}

/// Runs the target on `input` and checks both allocation bounds.
pub fn run(target: Target, input: &[u8]) -> Cost {
    let cost = measure(target.body, input);
    let (largest, total) = ((target.largest)(input.len()), (target.total)(input.len()));
    assert!(
        cost.largest <= largest,
        "target {} allocated {} octets at once for a {}-octet input (bound {largest})",
        target.name,
        cost.largest,
        input.len()
    );
    assert!(
        cost.total <= total,
        "target {} allocated {} octets in all for a {}-octet input (bound {total})",
        target.name,
        cost.total,
        input.len()
    );
    cost
}

pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// The committed corpus of a target, sorted by file name.
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} unreadable: {e}", dir.display()));
    let mut out: Vec<(String, Vec<u8>)> = entries
        .map(|entry| {
            let path = entry.expect("corpus directory entry").path();
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("corpus file {} unreadable: {e}", path.display()));
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                bytes,
            )
        })
        .collect();
    out.sort();
    out
}

/// Replays every committed input of `target` (at least `min_files` of
/// them) and returns the largest costs seen, for the test's output.
pub fn replay_corpus(target: Target, min_files: usize) -> Cost {
    let files = corpus(target.name);
    assert!(
        files.len() >= min_files,
        "fuzz/corpus/{} holds {} files, expected at least {min_files}",
        target.name,
        files.len()
    );
    let mut worst = Cost::default();
    for (name, bytes) in &files {
        let cost = std::panic::catch_unwind(|| run(target, bytes)).unwrap_or_else(|e| {
            eprintln!("fuzz/corpus/{}/{name} failed", target.name);
            std::panic::resume_unwind(e)
        });
        worst.largest = worst.largest.max(cost.largest);
        worst.total = worst.total.max(cost.total);
    }
    eprintln!(
        "{}: {} files replayed; largest allocation {} octets, most allocated by one input {} octets",
        target.name,
        files.len(),
        worst.largest,
        worst.total
    );
    worst
}

/// Writes `(file name, bytes)` seeds into `dir` (created if missing;
/// files already there stay), for a campaign to start from.
pub fn write_seeds(dir: &Path, files: &[(String, Vec<u8>)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

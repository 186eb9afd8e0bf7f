#!/usr/bin/env bash
# Runs a fuzzing campaign on one target, or minimizes a target's committed
# corpus (see docs/FUZZING.md).
#
#   fuzz/run.sh TARGET SECONDS [LIBFUZZER_FLAG...]   a campaign of SECONDS
#   fuzz/run.sh --cmin TARGET                         minimize fuzz/corpus/TARGET
#   fuzz/run.sh --list                                the targets
#
# A campaign reads the committed corpus (fuzz/corpus/TARGET) and writes
# what it discovers to ~/.cache/ferrolb/fuzz-corpus/TARGET, outside the
# tree; --cmin merges that into fuzz/corpus/TARGET and minimizes it there
# (cargo fuzz cmin). Crashes land in fuzz/artifacts/TARGET/ (ignored by
# git). One libFuzzer process on one core: no -jobs/-fork, which is
# -jobs=1 -workers=1. The log and a summary line (runs, time, cov, ft,
# corpus) go to ~/.cache/ferrolb/fuzz-logs/.
#
# It installs what it needs: cargo-fuzz (pinned, built from crates.io once
# into ~/.cache/ferrolb/tools/cargo-fuzz-VERSION), and runs the stable
# toolchain with RUSTC_BOOTSTRAP=1 for cargo-fuzz's nightly-only flags
# (AddressSanitizer, coverage instrumentation). Builds go to
# ~/.cache/ferrolb/target-fuzz.
#
#   FERROLB_CACHE         cache root (default ~/.cache/ferrolb)
#   FERROLB_FUZZ_RUNS     also stop after this many executions
#   FERROLB_FUZZ_SANITIZER address (default) or none
#   FERROLB_FUZZ_TRACE_COMPARES
#                         1 (default) or 0: build without the comparison
#                         tracing (cargo fuzz --no-trace-compares), into
#                         ~/.cache/ferrolb/target-fuzz-notc; about twice
#                         the runs/s of the configuration targets, at the
#                         cost of libFuzzer's hints from compared values
set -euo pipefail

cargo_fuzz_version=0.13.2
here="$(cd "$(dirname "$0")" && pwd)"
cache="${FERROLB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb}"
log() { echo "fuzz/run.sh: $*" >&2; }
usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

targets() {
    sed -n 's/^name = "\(.*\)"$/\1/p' "$here/Cargo.toml" | grep -v '^ferrolb-fuzz$'
}

# The longest input each target is given (-max_len).
max_len() {
    case "$1" in
        message | update_attributes) echo 65535 ;;
        l2_frame) echo 1600 ;;
        announcer) echo 1024 ;;
        membership) echo 4096 ;;
        yaml_* | migrate | service_*) echo 4096 ;;
        *) echo 4096 ;;
    esac
}

[[ $# -ge 1 ]] || usage
case "$1" in
    --list)
        targets
        exit 0
        ;;
    --cmin)
        [[ $# -eq 2 ]] || usage
        mode=cmin
        target=$2
        ;;
    -*) usage ;;
    *)
        [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage
        mode=run
        target=$1
        seconds=$2
        shift 2
        extra=("$@")
        ;;
esac
if ! targets | grep -qx "$target"; then
    log "unknown target '$target'; targets: $(targets | tr '\n' ' ')"
    exit 2
fi

# --- cargo-fuzz, once, into the cache ----------------------------------------
tools="$cache/tools/cargo-fuzz-$cargo_fuzz_version"
if [[ ! -f $tools/.ferrolb-complete || ! -x $tools/bin/cargo-fuzz ]]; then
    log "installing cargo-fuzz $cargo_fuzz_version into $tools (once; a few minutes)"
    rm -rf "$tools"
    cargo install cargo-fuzz --version "=$cargo_fuzz_version" --locked --root "$tools" >&2
    touch "$tools/.ferrolb-complete"
fi
export PATH="$tools/bin:$PATH"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$cache/target-fuzz"
# AddressSanitizer keeps what it is here for in Rust: the redzone checks
# (reads and writes out of bounds of heap, stack and globals, in our code
# and its dependencies) and the allocation limit. Three of its defaults
# cost most of the time and look for what safe Rust rules out (no fuzzed
# crate has `unsafe`): fake stacks for stack use-after-return (a tenth of
# the time of some targets), the quarantine of freed memory for heap
# use-after-free (recycling it took 2.5-3x the runs of `membership` and
# 1.6x of `yaml_manifest`, whatever its size), and a stack trace per
# allocation. ASAN_OPTIONS overrides all three.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_stack_use_after_return=0:quarantine_size_mb=0:malloc_context_size=0}"
sanitizer="${FERROLB_FUZZ_SANITIZER:-address}"
# Release build with debug assertions (integer overflow is a crash too).
build_flags=(--sanitizer "$sanitizer" --debug-assertions)
case "${FERROLB_FUZZ_TRACE_COMPARES:-1}" in
    1) ;;
    0)
        build_flags+=(--no-trace-compares)
        export CARGO_TARGET_DIR="$cache/target-fuzz-notc"
        ;;
    *)
        log "FERROLB_FUZZ_TRACE_COMPARES must be 1 or 0"
        exit 2
        ;;
esac

cd "$here"
corpus="corpus/$target"
work="$cache/fuzz-corpus/$target"
mkdir -p "$corpus" "$work" "$cache/fuzz-logs"
len="$(max_len "$target")"

if [[ $mode == cmin ]]; then
    # Everything found so far joins the committed inputs, then the set is
    # cut to the smallest one with the same edge coverage (-use_counters=0:
    # hit counts are not kept apart, so the set stays a few hundred files).
    before="$(find "$corpus" -type f | wc -l)"
    find "$work" -maxdepth 1 -type f -exec cp -n -t "$corpus" {} +
    cargo fuzz cmin "${build_flags[@]}" "$target" "$corpus" -- -max_len="$len" -timeout=30 -malloc_limit_mb=16 -use_counters=0 >&2
    after="$(find "$corpus" -type f | wc -l)"
    log "$target: $before committed + $(find "$work" -maxdepth 1 -type f | wc -l) found -> $after files, $(du -sh "$corpus" | cut -f1)"
    exit 0
fi

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
logfile="$cache/fuzz-logs/$target-$stamp${build_flags[3]:+-notc}.log"
flags=(
    -max_total_time="$seconds"
    -max_len="$len"
    -malloc_limit_mb=16
    -timeout=10
    -print_final_stats=1
)
if [[ -n ${FERROLB_FUZZ_RUNS:-} ]]; then
    flags+=(-runs="$FERROLB_FUZZ_RUNS")
fi
log "building $target (cargo fuzz build ${build_flags[*]})"
cargo fuzz build "${build_flags[@]}" "$target" >&2
log "running $target for ${seconds}s: $work (new inputs) and $corpus (committed); log $logfile"
started=$SECONDS
set +e
cargo fuzz run "${build_flags[@]}" "$target" "$work" "$corpus" -- "${flags[@]}" ${extra[@]+"${extra[@]}"} >"$logfile" 2>&1
status=$?
set -e
elapsed=$((SECONDS - started))
done_line="$(grep -E '^#[0-9]+\s+DONE' "$logfile" | tail -1 || true)"
[[ -n $done_line ]] || done_line="$(grep -E '^#[0-9]+' "$logfile" | tail -1 || true)"
runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$logfile" | tail -1)"
rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logfile" | tail -1)"
rss="$(sed -n 's/^stat::peak_rss_mb: *//p' "$logfile" | tail -1)"
echo "$target: exit $status, ${elapsed}s, runs ${runs:-?} (${rate:-?}/s), peak RSS ${rss:-?} MB, corpus $(find "$work" -maxdepth 1 -type f | wc -l) files found; last: $done_line"
if [[ $status -ne 0 ]]; then
    log "the campaign failed; see $logfile and fuzz/artifacts/$target/"
    grep -E 'ERROR|panicked|SUMMARY|Test unit written' "$logfile" | head -20 >&2 || true
fi
exit "$status"

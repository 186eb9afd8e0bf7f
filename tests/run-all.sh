#!/usr/bin/env bash
# The one command that runs every test: installs what the tests need, checks
# formatting, lints, checks that deploy/crds.yaml is current, and runs all unit
# and end-to-end tests. CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# Build products are cached outside the clone so later runs take minutes.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "installing test dependencies"
tests/setup/install-deps.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "deploy/crds.yaml is what 'ferrolb-controller crds' prints"
cargo build --locked -q -p ferrolb-controller
if ! "$CARGO_TARGET_DIR/debug/ferrolb-controller" crds | diff -u deploy/crds.yaml -; then
    echo "deploy/crds.yaml is stale: run 'cargo run -p ferrolb-controller -- crds > deploy/crds.yaml'" >&2
    exit 1
fi

step "test Kubernetes API server (built once from Debian's source, then cached)"
tests/apiserver/build-binaries.sh >/dev/null
tests/apiserver/kubectl.sh >/dev/null

step "building every binary the end-to-end tests run"
cargo build --workspace --locked --bins

step "cargo test (unit and end-to-end)"
cargo test --workspace --locked --no-fail-fast

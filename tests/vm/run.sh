#!/usr/bin/env bash
# Runs one program inside the test VM made by tests/vm/prepare.sh and exits
# with its exit code:
#
#   tests/vm/run.sh BINARY [ARGS...]
#
# The VM has no network device at all. It sees the host's root filesystem
# read-only (9p), with its own /proc, /sys, /dev and empty writable /tmp and
# /run; so BINARY (and every file it reads) must be on the host outside
# /tmp, /run, /dev, /proc and /sys. BINARY runs as root in a chroot of that
# filesystem, in the current directory, with a clean environment: PATH,
# HOME=/root, FERROLB_IN_VM=1, FERROLB_VM_ACCEL=kvm|tcg (how the VM runs),
# and the caller's CI, RUST_BACKTRACE, RUST_LOG and FERROLB_* variables.
#
# The serial console (kernel messages, the program's output, and the line
# FERROLB-VM-EXIT=<code>) is printed on stdout as it comes.
#
# Exit codes: the program's own; 77 when the VM cannot run here (no QEMU,
# not prepared); 124 when the VM did not finish within FERROLB_VM_TIMEOUT
# seconds (default 300); 125 when the VM failed before or around the program
# (setup failure, no exit line).
#
# FERROLB_VM_ACCEL=kvm|tcg overrides the accelerator prepare.sh found.
# `run.sh --probe` boots and exits 0 without running anything (prepare.sh's
# KVM probe).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${FERROLB_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb/vm}"
image="$cache/current"
timeout_s="${FERROLB_VM_TIMEOUT:-300}"
say() { echo "vm/run: $*" >&2; }
unavailable() { say "cannot run the VM: $*"; exit 77; }

probe=""
if [[ "${1:-}" == "--probe" ]]; then
    probe=1
    shift
elif [[ $# -lt 1 ]]; then
    echo "usage: $0 BINARY [ARGS...]" >&2
    exit 2
fi

qemu="$(command -v qemu-system-x86_64 || true)"
[[ -n "$qemu" ]] || unavailable "qemu-system-x86_64 not found (Debian package qemu-system-x86)"
for file in vmlinuz initrd.gz busybox; do
    [[ -f "$image/$file" ]] || unavailable "$image/$file missing: run tests/vm/prepare.sh"
done

accel="${FERROLB_VM_ACCEL:-}"
if [[ -z "$accel" && -f "$image/accel-$(uname -r)" ]]; then
    accel="$(cat "$image/accel-$(uname -r)")"
fi
case "${accel:-tcg}" in
kvm) accel_args=(-accel kvm -cpu host) ;;
tcg) accel_args=(-accel tcg -cpu max) ;;
*) say "FERROLB_VM_ACCEL must be kvm or tcg, not '$accel'"; exit 2 ;;
esac

# Single-quoted for sh.
quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

job="$(mktemp -d "${TMPDIR:-/tmp}/ferrolb-vm.XXXXXX")"
qemu_pid=""
cleanup() {
    if [[ -n "$qemu_pid" ]]; then kill -KILL "$qemu_pid" 2>/dev/null || true; fi
    rm -rf "$job"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP
mkdir -p "$job/root/job"
if [[ -n "$probe" ]]; then
    echo "exit 0" >"$job/root/job/run"
else
    binary="$(realpath -e "$1")" || { say "$1: no such file"; exit 2; }
    shift
    for path in "$binary" "${FERROLB_SPEAKER_BIN:-}"; do
        case "$path" in
        /tmp/* | /run/* | /dev/* | /proc/* | /sys/* | /var/run/*)
            say "$path is under a directory the VM replaces (/tmp, /run, /dev, /proc, /sys)"
            exit 2
            ;;
        esac
    done
    envs=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "HOME=/root"
        "FERROLB_IN_VM=1" "FERROLB_VM_ACCEL=${accel:-tcg}")
    while IFS= read -r -d '' entry; do
        case "${entry%%=*}" in
        FERROLB_IN_VM | FERROLB_VM_ACCEL) ;;
        CI | RUST_BACKTRACE | RUST_LOG | FERROLB_*) envs+=("$entry") ;;
        esac
    done < <(env -0)
    {
        printf 'chroot /host /usr/bin/env -i'
        for entry in "${envs[@]}"; do printf ' %s' "$(quote "$entry")"; done
        # In the chroot: cd to the caller's directory (or / if the VM does not
        # have it), then exec the program.
        printf " /bin/sh -c 'cd \"\$0\" 2>/dev/null || cd /; exec \"\$@\"' %s" "$(quote "$PWD")"
        printf ' %s' "$(quote "$binary")"
        for arg in "$@"; do printf ' %s' "$(quote "$arg")"; done
        printf '\n'
    } >"$job/root/job/run"
fi
# The kernel unpacks concatenated archives: the prepared initrd, then the job.
(cd "$job/root" && find . | "$image/busybox" cpio -o -H newc 2>/dev/null) | gzip -1 >"$job/job.gz"
cat "$image/initrd.gz" "$job/job.gz" >"$job/initrd.gz"

say "booting $(readlink "$image") with ${accel:-tcg} (timeout ${timeout_s}s)"
mkfifo "$job/console"
"$qemu" "${accel_args[@]}" -m 1024 -smp 2 \
    -kernel "$image/vmlinuz" -initrd "$job/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1" \
    -no-reboot -display none -monitor none -serial stdio -nic none \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,multidevs=remap,readonly=on \
    </dev/null >"$job/console" &
qemu_pid=$!
# The console, without the serial line's carriage returns, on stdout and in
# a log for the exit line.
tr -d '\r' <"$job/console" | tee "$job/console.log" &
reader_pid=$!
timed_out=""
deadline=$((SECONDS + timeout_s))
while kill -0 "$qemu_pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
        timed_out=1
        kill -KILL "$qemu_pid" 2>/dev/null || true
        break
    fi
    sleep 0.2
done
wait "$qemu_pid" 2>/dev/null && qemu_status=0 || qemu_status=$?
qemu_pid=""
wait "$reader_pid" || true

if [[ -n "$timed_out" ]]; then
    say "the VM did not finish within ${timeout_s}s (killed)"
    exit 124
fi
if setup="$(grep -m1 '^FERROLB-VM-SETUP-FAILED:' "$job/console.log")"; then
    say "VM setup failed: ${setup#*: }"
    exit 125
fi
code="$(sed -n 's/^FERROLB-VM-EXIT=\([0-9]\{1,3\}\)$/\1/p' "$job/console.log" | tail -n1)"
if [[ -z "$code" ]]; then
    say "the VM ended (QEMU status $qemu_status) without an exit line"
    exit 125
fi
say "program exited with $code"
exit "$code"

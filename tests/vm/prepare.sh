#!/usr/bin/env bash
# Prepares the small QEMU VM that end-to-end tests use when the host kernel
# lacks a feature they need (today: 802.1Q VLAN sub-interfaces for
# tests/tests/l2.rs). Idempotent; fast (no download) when the cache is current.
#
# What it makes, under ${FERROLB_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb/vm}:
#   <kernel package>_<version>+busybox_<version>/
#     vmlinuz        Debian's generic amd64 kernel (the cloud flavour has no 9p,
#                    which the VM needs to see the host's files)
#     busybox        from Debian's busybox-static
#     modules/, modules.txt  the kernel modules the tests need with their
#                    dependencies, and the order to load them in
#     initrd.gz      busybox, those modules and tests/vm/init
#     accel-<uname -r>  "kvm" or "tcg": whether KVM boots this kernel here
#   current -> the directory above (what tests/vm/run.sh boots)
# Both packages are fetched with `apt-get download` and unpacked with
# `dpkg-deb -x` into the cache: nothing is installed on the host.
#
# Prints the image directory on success. FERROLB_VM_ACCEL=kvm|tcg skips the
# KVM probe.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${FERROLB_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb/vm}"
say() { echo "vm/prepare: $*" >&2; }
die() { say "error: $*"; exit 1; }

# Modules the tests need inside the VM (dependencies are added from
# modules.dep). Built-in options the tests need are checked in the config.
modules=(virtio_pci 9pnet_virtio 9p 8021q veth bridge)
builtin_options=(CONFIG_NET_NS CONFIG_PACKET CONFIG_IPV6 CONFIG_UNIX CONFIG_DEVTMPFS
    CONFIG_TMPFS CONFIG_BLK_DEV_INITRD CONFIG_RD_GZIP CONFIG_SERIAL_8250_CONSOLE)
module_options=(CONFIG_VIRTIO_PCI CONFIG_NET_9P CONFIG_NET_9P_VIRTIO CONFIG_9P_FS
    CONFIG_VLAN_8021Q CONFIG_VETH CONFIG_BRIDGE)

command -v apt-cache >/dev/null && command -v dpkg-deb >/dev/null ||
    die "apt-cache and dpkg-deb are needed (a Debian host)"

# The current package names and versions, from apt's lists (refreshed once
# when they do not know the packages yet).
resolve() {
    kernel_pkg="$(apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1)"
    kernel_ver=""
    busybox_ver=""
    if [[ -n "$kernel_pkg" ]]; then
        read -r kernel_ver busybox_ver < <(apt-cache show --no-all-versions "$kernel_pkg" busybox-static \
            2>/dev/null | awk -v k="$kernel_pkg" '/^Package: /{p=$2} /^Version: /{v[p]=$2}
                END{print v[k], v["busybox-static"]}') || true
    fi
    [[ -n "$kernel_pkg" && -n "$kernel_ver" && -n "$busybox_ver" ]]
}
if ! resolve; then
    if [[ $(id -u) -eq 0 ]]; then
        say "apt lists do not know linux-image-amd64/busybox-static; running apt-get update"
        apt-get update -qq || say "apt-get update failed"
    fi
    if ! resolve; then
        if [[ -L "$cache/current" && -f "$cache/current/initrd.gz" ]]; then
            say "cannot ask apt for current versions; keeping $(readlink "$cache/current")"
            kernel_pkg=""
        else
            die "cannot find linux-image-amd64 and busybox-static in apt's lists (run apt-get update)"
        fi
    fi
fi

if [[ -n "$kernel_pkg" ]]; then
    # ':' (an epoch) is not welcome in paths.
    name="${kernel_pkg}_${kernel_ver}+busybox_${busybox_ver}"
    image="$cache/${name//:/%3a}"
else
    image="$(readlink -f "$cache/current")"
fi

mkdir -p "$cache"
# One preparation at a time.
exec 9>"$cache/.lock"
flock 9

# 1. The kernel, the modules and busybox, fetched once per package versions
# (and module list).
if [[ ! -f "$image/vmlinuz" || "$(cat "$image/wanted" 2>/dev/null)" != "${modules[*]}" ]]; then
    [[ -n "$kernel_pkg" ]] || die "the cached image lacks files and apt cannot say what to fetch"
    work="$(mktemp -d "$cache/.work.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    say "fetching $kernel_pkg $kernel_ver and busybox-static $busybox_ver"
    # -o APT::Sandbox::User=root: the download goes to a directory _apt may
    # not be able to write.
    (cd "$work" && apt-get download -q -o APT::Sandbox::User=root \
        "$kernel_pkg=$kernel_ver" "busybox-static=$busybox_ver" >/dev/null) ||
        die "apt-get download of $kernel_pkg=$kernel_ver busybox-static=$busybox_ver failed"
    mkdir "$work/kernel" "$work/busybox" "$work/image" "$work/image/modules"
    dpkg-deb -x "$work"/linux-image-*.deb "$work/kernel"
    dpkg-deb -x "$work"/busybox-static_*.deb "$work/busybox"
    bb="$work/busybox/bin/busybox"
    [[ -x "$bb" ]] || die "busybox-static has no bin/busybox"

    kdir=("$work"/kernel/lib/modules/*)
    [[ ${#kdir[@]} -eq 1 && -d "${kdir[0]}" ]] || die "expected one modules directory in $kernel_pkg"
    kver="$(basename "${kdir[0]}")"
    config="$work/kernel/boot/config-$kver"
    [[ -f "$config" && -f "$work/kernel/boot/vmlinuz-$kver" ]] || die "$kernel_pkg has no config/vmlinuz for $kver"
    for option in "${builtin_options[@]}"; do
        grep -qx "$option=y" "$config" || die "$kernel_pkg: $option is not built in"
    done
    for option in "${module_options[@]}"; do
        grep -qE "^$option=[ym]$" "$config" || die "$kernel_pkg: $option is not enabled"
    done

    # The package has no modules.dep (its postinst runs depmod): make one.
    "$bb" depmod -b "$work/kernel" "$kver"
    declare -A deps=() loaded=() by_name=()
    while IFS= read -r line; do
        deps["${line%%:*}"]="${line#*:}"
    done <"${kdir[0]}/modules.dep"
    for path in "${!deps[@]}"; do
        base="$(basename "$path" .ko)"
        by_name["${base//-/_}"]="$path"
    done
    order=()
    # Depth-first: every module after all it depends on.
    add_module() {
        local path="$1" dep
        [[ -n "${loaded[$path]:-}" ]] && return
        loaded["$path"]=1
        for dep in ${deps[$path]}; do
            [[ -n "${deps[$dep]+x}" ]] || die "modules.dep: $path needs $dep, which is missing"
            add_module "$dep"
        done
        order+=("$path")
    }
    for module in "${modules[@]}"; do
        if grep -q "/$module.ko$" "${kdir[0]}/modules.builtin"; then
            continue
        fi
        [[ -n "${by_name[$module]:-}" ]] || die "$kernel_pkg has no module $module"
        add_module "${by_name[$module]}"
    done
    : >"$work/image/modules.txt"
    for path in "${order[@]}"; do
        cp "${kdir[0]}/$path" "$work/image/modules/"
        basename "$path" >>"$work/image/modules.txt"
    done
    cp "$work/kernel/boot/vmlinuz-$kver" "$work/image/vmlinuz"
    cp "$bb" "$work/image/busybox"
    echo "${modules[*]}" >"$work/image/wanted"
    rm -rf "$image"
    mv "$work/image" "$image"
    rm -rf "$work"
    trap - EXIT
    say "unpacked kernel $kver into $image; modules: $(tr '\n' ' ' <"$image/modules.txt")"
fi

# 2. The initramfs, rebuilt when tests/vm/init or the module list changes
# (by content: a fresh clone has new file times).
inputs="$(cat "$here/init" "$image/modules.txt" | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$image/initrd.gz" || "$(cat "$image/initrd.inputs" 2>/dev/null)" != "$inputs" ]]; then
    root="$(mktemp -d "$cache/.initrd.XXXXXX")"
    trap 'rm -rf "$root"' EXIT
    mkdir -p "$root"/{bin,dev,proc,sys,host,job,lib/modules,etc}
    cp "$image/busybox" "$root/bin/busybox"
    cp "$here/init" "$root/init"
    chmod 755 "$root/init"
    cp "$image/modules.txt" "$root/etc/modules"
    cp "$image"/modules/*.ko "$root/lib/modules/"
    (cd "$root" && find . | LC_ALL=C sort | "$image/busybox" cpio -o -H newc 2>/dev/null) |
        gzip -6 >"$image/initrd.gz.new"
    mv "$image/initrd.gz.new" "$image/initrd.gz"
    echo "$inputs" >"$image/initrd.inputs"
    rm -rf "$root"
    trap - EXIT
    say "built $image/initrd.gz"
fi
ln -sfn "$(basename "$image")" "$cache/current.new"
mv -T "$cache/current.new" "$cache/current"
# Images of older package versions are not needed any more.
for old in "$cache"/linux-image-*; do
    [[ "$old" == "$image" ]] || rm -rf "$old"
done

# Whether KVM boots this kernel here (it may be absent, not ours to use, or a
# nested hypervisor that cannot run a stock kernel at a usable speed): a
# probe boot, cached per host kernel. TCG (emulation) otherwise.
accel_file="$image/accel-$(uname -r)"
if [[ -n "${FERROLB_VM_ACCEL:-}" ]]; then
    :
elif [[ ! -f "$accel_file" ]]; then
    accel=tcg
    if ! command -v qemu-system-x86_64 >/dev/null; then
        say "qemu-system-x86_64 not found (Debian package qemu-system-x86); not probing KVM"
        accel=""
    elif [[ -r /dev/kvm && -w /dev/kvm ]]; then
        say "probing KVM (at most 20 s)"
        if out="$(FERROLB_VM_ACCEL=kvm FERROLB_VM_TIMEOUT=20 "$here/run.sh" --probe 2>&1)" &&
            grep -q '^FERROLB-VM-EXIT=0$' <<<"$out"; then
            accel=kvm
        else
            say "KVM cannot boot the VM here; using TCG. Probe output:"
            tail -n 5 <<<"$out" | sed 's/^/    /' >&2
        fi
    fi
    if [[ -n "$accel" ]]; then
        echo "$accel" >"$accel_file"
        say "accelerator: $accel"
    fi
fi
echo "$image"

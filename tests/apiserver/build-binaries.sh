#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager from Debian bookworm's
# `kubernetes` source package (upstream v1.20.2, Go dependencies vendored), once,
# and caches them outside the clone, keyed by the source package version.
# Prints the directory holding the binaries on its last line.
#
# Needs root (apt-get) on Debian bookworm. Offline except for Debian's archive.
set -euo pipefail

cache="${FERROLB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb}"
log() { echo "apiserver-build: $*" >&2; }

# 1. Source entries for bookworm, mirroring the existing deb entries.
srcfile=/etc/apt/sources.list.d/ferrolb-deb-src.sources
if ! apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Version: .*really1\.20'; then
    if [[ ! -f $srcfile ]]; then
        log "adding deb-src entries for bookworm ($srcfile)"
        {
            printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n'
            printf 'Types: deb-src\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        } >"$srcfile"
    fi
    apt-get update -qq
fi
version="$(apt-cache showsrc kubernetes | awk '/^Version: .*really1\.20/{print $2}' | sort -V | tail -n1)"
if [[ -z $version ]]; then
    log "no bookworm kubernetes source package with the API server found"
    exit 1
fi
out="$cache/kube-apiserver/$version"
if [[ -x $out/kube-apiserver && -x $out/kube-controller-manager ]]; then
    log "cached: $out"
    echo "$out"
    exit 0
fi

# 2. Build dependencies.
deps=(golang-1.19-go golang-github-modern-go-reflect2-dev make rsync jq etcd-server openssl curl dpkg-dev)
missing=()
for p in "${deps[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# 3. Fetch and unpack the source.
work="$cache/build/kubernetes-$version"
rm -rf "$work"
mkdir -p "$work"
log "fetching source kubernetes=$version"
(cd "$work" && apt-get source -qq --download-only "kubernetes=$version" >&2 && dpkg-source -x --skip-patches ./*.dsc src >&2)
tree="$work/src"
# Apply Debian's patches the normal way (quilt series), if any.
if [[ -f $tree/debian/patches/series ]]; then
    (cd "$tree" && while read -r p _; do
        [[ -z $p || $p == \#* ]] && continue
        patch -s -p1 <"debian/patches/$p" >&2 || log "patch $p did not apply; continuing"
    done <debian/patches/series)
fi

# 4. The vendored reflect2 is too old for Go >= 1.18 (the server crashes on the
#    first custom object it stores): use Debian's reflect2 1.0.2 instead.
rm -rf "$tree/vendor/github.com/modern-go/reflect2"
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$tree/vendor/github.com/modern-go/reflect2"

# 5. Build in GOPATH mode (module mode with -mod=vendor fails for this tree).
gopath="$work/gopath"
mkdir -p "$gopath/src/k8s.io"
ln -sfn "$tree" "$gopath/src/k8s.io/kubernetes"
log "building kube-apiserver and kube-controller-manager (a few minutes)"
(
    cd "$gopath/src/k8s.io/kubernetes"
    export PATH=/usr/lib/go-1.19/bin:$PATH GOPATH="$gopath" GO111MODULE=off GOPROXY=off CGO_ENABLED=0 GOFLAGS=
    export KUBE_GIT_VERSION="v1.20.2" KUBE_GIT_TREE_STATE=clean
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >&2
)
mkdir -p "$out"
for b in kube-apiserver kube-controller-manager; do
    found="$(find "$tree/_output" -type f -name "$b" -perm -u+x | head -n1)"
    [[ -n $found ]] || { log "$b was not built"; exit 1; }
    cp "$found" "$out/$b"
done
rm -rf "$work"
log "built into $out"
echo "$out"

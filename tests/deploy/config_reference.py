"""Writes docs/CONFIG-REFERENCE.md: every field of every FerroLB CRD.

    config_reference.py [--crds deploy/crds.yaml]           # print the reference
    config_reference.py --check docs/CONFIG-REFERENCE.md    # exit 1 with a diff when stale,
                                                            # or when a field has no description

Everything comes from the CRDs' openAPIV3Schema (deploy/crds.yaml, itself the
output of `ferrolb-controller crds`): each field's path, type, bounds, enum
values, default and description. Nothing is written by hand, so the
reference changes when the Rust types in config/src change and
`ferrolb-controller crds > deploy/crds.yaml` is run. tests/tests/deploy.rs
runs --check. Needs PyYAML (the venv of tests/setup/install-deploy-tools.sh
has it).
"""

import argparse
import difflib
import os
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMMAND = "python3 tests/deploy/config_reference.py > docs/CONFIG-REFERENCE.md"

LABEL_SELECTOR_DOC = "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"
CONDITION_DOC = "https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/"
CONDITION_FIELDS = {"lastTransitionTime", "message", "reason", "status", "type"}


def one_line(text):
    """A description as one Markdown table cell."""
    if not text:
        return ""
    words = " ".join(line.strip() for line in text.strip().splitlines())
    return words.replace("|", "\\|")


def number(n):
    return str(int(n)) if float(n).is_integer() else str(n)


def is_label_selector(schema):
    props = schema.get("properties") or {}
    return schema.get("type") == "object" and set(props) == {"matchExpressions", "matchLabels"}


def is_condition(schema):
    props = schema.get("properties") or {}
    return schema.get("type") == "object" and CONDITION_FIELDS <= set(props)


def type_of(schema):
    """A short human type: `string`, `integer (1-65535)`, `list of string`, ..."""
    if is_label_selector(schema):
        return f"[label selector]({LABEL_SELECTOR_DOC})"
    if is_condition(schema):
        return "Condition"
    t = schema.get("type")
    if t == "array":
        items = schema.get("items") or {}
        return f"list of {type_of(items)}"
    if t == "object" and isinstance(schema.get("additionalProperties"), dict) and "properties" not in schema:
        return f"map of string to {type_of(schema['additionalProperties'])}"
    out = t or "any"
    if "enum" in schema:
        out += ": " + " \\| ".join(f"`{v}`" for v in schema["enum"] if v is not None)
    bounds = []
    if "minimum" in schema and "maximum" in schema:
        bounds.append(f"{number(schema['minimum'])}-{number(schema['maximum'])}")
    elif "minimum" in schema:
        bounds.append(f"at least {number(schema['minimum'])}")
    elif "maximum" in schema:
        bounds.append(f"at most {number(schema['maximum'])}")
    if bounds:
        out += f" ({', '.join(bounds)})"
    return out


def default_of(schema):
    if "default" not in schema:
        return ""
    value = schema["default"]
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (dict, list)):
        text = yaml.safe_dump(value, default_flow_style=True).strip()
    else:
        text = str(value)
    return f"`{text}`"


def rows(schema, path, required, out):
    """One row per field below `schema`, depth first, in the schema's order."""
    props = schema.get("properties") or {}
    needed = set(schema.get("required") or [])
    for name in sorted(props):
        field = props[name]
        here = f"{path}.{name}" if path else name
        flags = []
        if name in needed:
            flags.append("required")
        description = one_line(field.get("description"))
        if is_condition(field.get("items") or {}) and not description:
            description = f"Standard Kubernetes [conditions]({CONDITION_DOC})."
        out.append((here, type_of(field), ", ".join(flags), default_of(field), description))
        if is_label_selector(field) or is_condition(field):
            continue
        items = field.get("items") or {}
        if field.get("type") == "array" and items.get("type") == "object":
            if not is_label_selector(items) and not is_condition(items):
                rows(items, here + "[]", required, out)
        elif field.get("type") == "object" and field.get("properties"):
            rows(field, here, required, out)


def crd_section(crd):
    names = crd["spec"]["names"]
    group = crd["spec"]["group"]
    kind = names["kind"]
    lines = []
    for version in crd["spec"]["versions"]:
        if not version.get("served", True):
            continue
        schema = version["schema"]["openAPIV3Schema"]
        api_version = f"{group}/{version['name']}"
        lines.append(f"## {kind}")
        lines.append("")
        lines.append(f"`apiVersion: {api_version}`, `kind: {kind}`. {one_line(schema.get('description'))}")
        lines.append("")
        facts = [f"scope: {crd['spec']['scope']}", f"plural: `{names['plural']}`"]
        if names.get("shortNames"):
            facts.append("short names: " + ", ".join(f"`{s}`" for s in names["shortNames"]))
        if version.get("subresources", {}).get("status") is not None:
            facts.append("`status` is a subresource (written by FerroLB)")
        lines.append("- " + "; ".join(facts) + ".")
        columns = version.get("additionalPrinterColumns") or []
        if columns:
            shown = [c["name"] for c in columns if not c.get("priority")]
            wide = [c["name"] for c in columns if c.get("priority")]
            text = f"- `kubectl get {names['plural']}` shows: " + ", ".join(shown)
            if wide:
                text += "; with `-o wide` also: " + ", ".join(wide)
            lines.append(text + ".")
        lines.append("")
        out = []
        for part in ("spec", "status"):
            sub = (schema.get("properties") or {}).get(part)
            if sub is None:
                continue
            if not sub.get("properties"):
                out.append((part, type_of(sub), "", default_of(sub), one_line(sub.get("description"))))
                continue
            out.append((part, type_of(sub), "required" if part in (schema.get("required") or []) else "",
                        default_of(sub), one_line(sub.get("description"))))
            rows(sub, part, set(), out)
        lines.append("| field | type | default | description |")
        lines.append("| --- | --- | --- | --- |")
        for path, typ, flags, default, description in out:
            typ_cell = f"{typ}, {flags}" if flags else typ
            lines.append(f"| `{path}` | {typ_cell} | {default} | {description} |")
        lines.append("")
    return lines


def render(crds_path):
    with open(crds_path) as f:
        crds = [d for d in yaml.safe_load_all(f) if d and d.get("kind") == "CustomResourceDefinition"]
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated from deploy/crds.yaml by tests/deploy/config_reference.py; do not edit.",
        f"     Regenerate: {COMMAND} -->",
        "",
        "Every field of every FerroLB kind, generated from the CRDs' schemas",
        "(`deploy/crds.yaml`, the output of `ferrolb-controller crds`), so it",
        "cannot drift from what the API server and FerroLB accept. The test",
        "command checks it (`tests/tests/deploy.rs`); after changing the CRD",
        "types in `config/src`, regenerate it with",
        "",
        "```sh",
        COMMAND,
        "```",
        "",
        "Paths are written from the object's root: `spec.serviceAllocation.priority`",
        "is `priority` inside `serviceAllocation` inside `spec`; `[]` marks the",
        "entries of a list. A default is what the API server fills in when the",
        "field is left out; where the schema has none, the description says what",
        "FerroLB does without the field. The README's",
        "[configuration reference](../README.md#configuration-reference) explains",
        "how the kinds work together, and `ferrolb-controller validate` checks",
        "what no schema can (overlaps, references, BGP timer rules).",
        "",
        "| kind | apiVersion | what |",
        "| --- | --- | --- |",
    ]
    for crd in crds:
        names = crd["spec"]["names"]
        for version in crd["spec"]["versions"]:
            if version.get("served", True):
                desc = one_line(version["schema"]["openAPIV3Schema"].get("description"))
                anchor = names["kind"].lower()
                lines.append(
                    f"| [{names['kind']}](#{anchor}) | `{crd['spec']['group']}/{version['name']}` | {desc} |"
                )
    lines.append("")
    for crd in crds:
        lines.extend(crd_section(crd))
    return "\n".join(lines).rstrip("\n") + "\n"


def sections(text):
    """(kind, line) for each line of the rendered reference."""
    section = ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:]
        yield section, line


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crds", default=os.path.join(ROOT, "deploy/crds.yaml"))
    parser.add_argument("--check", metavar="FILE", help="compare with FILE instead of printing")
    args = parser.parse_args()
    text = render(args.crds)
    if not args.check:
        sys.stdout.write(text)
        return 0
    undescribed = [
        line.split("`")[1] + " (" + section + ")"
        for section, line in sections(text)
        if line.startswith("| `") and line.rstrip().endswith("|  |")
    ]
    if undescribed:
        print("fields without a description (add a doc comment to the field in config/src/crd):")
        for field in undescribed:
            print(f"    {field}")
        return 1
    try:
        with open(args.check) as f:
            committed = f.read()
    except FileNotFoundError:
        committed = ""
    crds_name = os.path.relpath(args.crds, ROOT)
    if committed == text:
        print(f"{args.check} is up to date with {crds_name}")
        return 0
    diff = difflib.unified_diff(
        committed.splitlines(keepends=True),
        text.splitlines(keepends=True),
        fromfile=f"{args.check} (committed)",
        tofile=f"{args.check} (generated from {crds_name})",
    )
    sys.stdout.writelines(diff)
    print(f"\n{args.check} is stale; regenerate it from the repository root with:\n    {COMMAND}")
    return 1


if __name__ == "__main__":
    sys.exit(main())

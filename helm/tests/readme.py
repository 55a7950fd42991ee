#!/usr/bin/env python3
"""Generates the values table of helm/tollgate/README.md from the `# --` comments of
values.yaml (the comment block right above a key describes it; its default is the key's value).

    python3 helm/tests/readme.py           # print the table
    python3 helm/tests/readme.py --write   # rewrite it between README.md's markers
test_readme.py fails when README.md is not what this writes."""

import json
import re
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[1] / "tollgate"
BEGIN, END = "<!-- values:begin -->", "<!-- values:end -->"
KEY = re.compile(r"^(\s*)([A-Za-z0-9_]+):(.*)$")


def documented_keys(text):
    """(dotted key, description) in file order, for every key with a `# --` comment."""
    stack, pending, out = [], None, []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = [stripped[4:].strip()]
        elif stripped.startswith("#") and pending is not None:
            pending.append(stripped[1:].strip())
        elif (m := KEY.match(line)) and not stripped.startswith("-"):
            indent = len(m.group(1))
            stack = [(i, k) for i, k in stack if i < indent] + [(indent, m.group(2))]
            if pending:
                out.append((".".join(k for _, k in stack), " ".join(pending)))
            pending = None
        elif not stripped.startswith("#"):
            pending = None
    return out


def default(values, key):
    node = values
    for part in key.split("."):
        node = node[part]
    return json.dumps(node, separators=(", ", ": "))


def table():
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    rows = ["| key | default | description |", "|---|---|---|"]
    for key, description in documented_keys(text):
        cell = default(values, key).replace("|", "\\|")
        text = description.replace("|", "\\|")
        rows.append(f"| `{key}` | `{cell}` | {text} |")
    return "\n".join(rows) + "\n"


def rendered_readme():
    readme = (CHART / "README.md").read_text()
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table()}{END}{tail}"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        (CHART / "README.md").write_text(rendered_readme())
    else:
        sys.stdout.write(table())

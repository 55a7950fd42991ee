"""The chart's README is current: its values table is what readme.py generates from
values.yaml's comments, and every value is documented."""

import difflib

import yaml

from chart import CHART
from readme import documented_keys, rendered_readme


def test_the_chart_readme_is_generated_from_the_current_values_comments():
    current = (CHART / "README.md").read_text()
    wanted = rendered_readme()
    diff = "".join(difflib.unified_diff(current.splitlines(True), wanted.splitlines(True), "README.md", "generated"))
    assert current == wanted, f"run python3 helm/tests/readme.py --write:\n{diff}"


def leaves(node, prefix=""):
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from leaves(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1]


def test_every_value_is_documented_by_itself_or_a_parent():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    documented = {k for k, _ in documented_keys((CHART / "values.yaml").read_text())}
    missing = [leaf for leaf in leaves(values)
               if not any(leaf == d or leaf.startswith(d + ".") for d in documented)]
    assert not missing, missing

"""The chart renders, lints and matches its golden files for every value set."""

import difflib
import os

import pytest
from helm_python import lint

from chart import CHART, TESTS, VALUE_SETS, render, values

UPDATE = os.environ.get("TOLLGATE_UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("name", VALUE_SETS)
def test_the_chart_lints_clean_in_strict_mode(name):
    report = lint(CHART, values(name), strict=True, namespace="tollgate")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report.get("errors", [])
    assert not problems, problems


@pytest.mark.parametrize("name", VALUE_SETS)
def test_each_value_set_renders_to_its_golden_file(name):
    golden = TESTS / "golden" / f"{name}.out.yaml"
    rendered = render(values(name))
    if UPDATE:
        golden.write_text(rendered)
    expected = golden.read_text() if golden.exists() else ""
    if rendered != expected:
        diff = "".join(difflib.unified_diff(
            expected.splitlines(True), rendered.splitlines(True),
            f"golden/{name}.out.yaml", "rendered"))
        pytest.fail(f"the chart renders differently (TOLLGATE_UPDATE_GOLDEN=1 to accept):\n{diff}")


def test_a_config_change_changes_the_checksum_that_rolls_the_pods():
    base = values("defaults")
    changed = {**base, "controlPlane": {"config": {"budgetRefreshMs": 500}}}

    def checksum(vals):
        for doc in render(vals).split("---\n"):
            for line in doc.splitlines():
                if "checksum/config:" in line:
                    return line.split(":", 1)[1].strip()
        raise AssertionError("no checksum/config annotation")

    assert checksum(base) != checksum(changed)

"""The README's two commands exist, and its drawn examples match the campaign files."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT


def test_readme_examples_are_drawn_from_the_current_campaign_files() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "readme_examples.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_readme_quick_start_is_make_demo_and_make_test() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "\ndemo:" in makefile and "\ntest:" in makefile


@pytest.mark.slow
def test_prefect_yaml_is_written_from_the_current_campaign_files() -> None:
    from flows.deploy import prefect_yaml

    committed = (ROOT / "prefect.yaml").read_text(encoding="utf-8")
    assert committed == prefect_yaml(ROOT / "campaign_graphs"), (
        "prefect.yaml is stale: run `campaign deploy --prefect-yaml prefect.yaml`"
    )

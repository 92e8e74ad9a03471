"""Shared test helpers: write campaign YAML into a temporary folder and load it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator import loader

ROOT = Path(__file__).resolve().parent.parent
SPEC_DIR = ROOT.parent / "shared" / "spec"


@pytest.fixture
def load_yaml(tmp_path: Path) -> Callable[..., loader.LoadedCampaign]:
    """load_yaml(text, name="c.yaml", **extra_files) -> LoadedCampaign"""

    def _load(text: str, name: str = "c.yaml", **files: str) -> loader.LoadedCampaign:
        for rel, body in files.items():
            target = tmp_path / rel.replace("__", "/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(body), encoding="utf-8")
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return loader.load(path)

    return _load

"""campaign-flow as a user installs it: the built wheel in a fresh venv, run from an empty folder."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT

UV = Path(sys.executable).parent / "uv"


def _run(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """The wheel built from this checkout, installed with its locked dependencies into a new
    venv; the venv's bin folder and an environment without any CAMPAIGN_ setting."""
    if not UV.exists():
        pytest.fail(f"{UV} is missing: `make install` puts uv in the venv")
    base = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGN_", "PREFECT_"))}
    env |= {
        "PREFECT_HOME": str(base / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "VIRTUAL_ENV": "",
    }
    _run([str(UV), "build", "--wheel", "-o", str(base / "dist"), str(ROOT)], cwd=base, env=env)
    (wheel,) = (base / "dist").glob("campaign_flow-*.whl")
    venv = base / "venv"
    _run([str(UV), "venv", "--python", sys.executable, str(venv)], cwd=base, env=env)
    python = venv / "bin" / "python"
    _run(
        [
            str(UV),
            "pip",
            "install",
            "--python",
            str(python),
            "-c",
            str(ROOT / "requirements.lock"),
            str(wheel),
        ],
        cwd=base,
        env=env,
    )
    yield venv / "bin", env


def test_the_installed_demo_runs_from_an_empty_folder(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    bin_folder, env = installed
    empty = tmp_path / "empty"
    empty.mkdir()
    out = _run(
        [str(bin_folder / "campaign"), "demo", "--subscribers", "10", "--workdir", "run"],
        cwd=empty,
        env=env,
    )
    walked = int(out.split(" subscribers walked in ")[0].rsplit("\n", 1)[-1])
    assert walked >= 60, out[-2000:]  # the six shipped examples, 10 subscribers each
    assert "== cart-recovery" in out
    # the hints name this installation's commands, not a checkout's .venv
    assert f"{bin_folder / 'campaign'} serve" in out and ".venv/bin" not in out
    assert f"CAMPAIGN_GRAPHS={bin_folder.parent}" in out  # the shipped examples
    assert sorted(p.name for p in empty.iterdir()) == ["run"]


def test_init_starts_a_project_every_command_honours_and_an_empty_one_is_refused(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    bin_folder, env = installed
    campaign = str(bin_folder / "campaign")
    _run([campaign, "init", "shop"], cwd=tmp_path, env=env)
    shop = tmp_path / "shop"
    assert "1 file checked: 0 errors" in _run(
        [campaign, "validate", "campaign_graphs/"], cwd=shop, env=env
    )
    # CAMPAIGN_GRAPHS (here from .env) is what tick and the demo read
    (tmp_path / "elsewhere").mkdir()
    moved = {**env, "CAMPAIGN_GRAPHS": str(shop / "campaign_graphs")}
    out = _run(
        [campaign, "demo", "--subscribers", "10", "--workdir", "run"],
        cwd=tmp_path / "elsewhere",
        env=moved,
    )
    assert "== welcome" in out and "== cart-recovery" not in out
    # a folder without campaigns is an error that says what to do, not a quiet nothing
    nothing = tmp_path / "nothing"
    (nothing / "campaign_graphs").mkdir(parents=True)
    for args in (["tick"], ["demo", "--subscribers", "10"], ["deploy"]):
        done = subprocess.run(
            [campaign, *args],
            cwd=nothing,
            env={
                **env,
                "CAMPAIGN_GRAPHS": "campaign_graphs",
                "CAMPAIGN_VAPID_SUBJECT": "mailto:a@b.c",
            },
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 1, (args, done.stdout[-1000:], done.stderr[-1000:])
        assert "no campaign files (*.yaml)" in done.stderr and "campaign init" in done.stderr, (
            args,
            done.stderr[-1000:],
        )

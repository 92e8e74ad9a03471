"""`campaign init`: a project that validates, secrets kept private, nothing overwritten."""

from __future__ import annotations

import stat
from pathlib import Path

from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.language import loader

runner = CliRunner()


def test_init_writes_a_valid_campaign_private_settings_and_a_key(tmp_path: Path) -> None:
    done = runner.invoke(app, ["init", str(tmp_path / "shop")])
    assert done.exit_code == 0, done.output
    shop = tmp_path / "shop"
    loaded = loader.load(shop / "campaign_graphs" / "welcome.yaml")
    assert loaded.ok and not loaded.diagnostics, [d.format() for d in loaded.diagnostics]
    env = (shop / ".env").read_text()
    assert "CAMPAIGN_GRAPHS=campaign_graphs" in env and "CAMPAIGN_API_KEY=" in env
    for private in (shop / ".env", shop / "vapid_private.pem"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
    other = tmp_path / "other"
    runner.invoke(app, ["init", str(other)])
    assert (other / ".env").read_text() != env  # fresh secrets each time


def test_init_refuses_to_overwrite_and_says_what_is_there(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CAMPAIGN_DB=sqlite:///mine.db\n")
    done = runner.invoke(app, ["init", str(tmp_path)])
    assert done.exit_code == 1 and ".env" in done.output
    assert (tmp_path / ".env").read_text() == "CAMPAIGN_DB=sqlite:///mine.db\n"
    assert (
        not (tmp_path / "campaign_graphs").exists()
        and not (tmp_path / "vapid_private.pem").exists()
    )


def test_init_into_a_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("x")
    done = runner.invoke(app, ["init", str(target)])
    assert done.exit_code == 1 and "cannot write the project" in done.output

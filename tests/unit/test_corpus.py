"""The corpus of broken campaign files: each one states what `campaign validate` must print.

Every file in tests/corpus/broken/ holds one mistake and starts with comment lines

    # expect: LINE:COL: error: MESSAGE

one per diagnostic the validator must report (no more, no fewer). A diagnostic
in another file (an included segment file) is written with that file's path
relative to the broken file: `# expect: segments/x.yaml:LINE:COL: error: ...`.
Every file in tests/corpus/valid/ must validate without errors.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.language import loader
from orchestrator.language.diagnostics import Diagnostic
from tests.helpers import CORPUS, ROOT

BROKEN = sorted((CORPUS / "broken").glob("*.yaml"))
VALID = sorted((CORPUS / "valid").glob("*.yaml"))
EXPECT = "# expect: "


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages name files relative to the working folder: run from the repository root."""
    monkeypatch.chdir(ROOT)


def expected_lines(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    return {line[len(EXPECT) :] for line in text.splitlines() if line.startswith(EXPECT)}


def formatted(case: Path, diagnostic: Diagnostic, display: str) -> str:
    """`LINE:COL: severity: MESSAGE`, prefixed by the file when it is not the case itself."""
    text = f"{diagnostic.line}:{diagnostic.col}: {diagnostic.severity}: {diagnostic.message}"
    if diagnostic.file != display:
        other = os.path.relpath(Path(diagnostic.file).resolve(), case.parent.resolve())
        text = f"{Path(other).as_posix()}:{text}"
    return text


def run_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["validate", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


# ------------------------------------------------------------------ the corpus itself


def test_corpus_has_at_least_45_broken_files_each_with_expectations() -> None:
    assert len(BROKEN) >= 45
    for case in BROKEN:
        assert case.name[:3].isdigit() and case.name[3] == "_", case.name
        assert expected_lines(case), f"{case.name} states no '# expect:' line"


def test_corpus_numbers_are_unique() -> None:
    numbers = [case.name[:3] for case in BROKEN]
    assert len(numbers) == len(set(numbers))


@pytest.mark.parametrize("case", BROKEN, ids=lambda p: p.stem)
def test_broken_file_reports_exactly_its_expected_diagnostics(case: Path) -> None:
    loaded = loader.load(case.relative_to(ROOT))
    got = {formatted(case, d, loaded.display) for d in loaded.diagnostics}
    want = expected_lines(case)
    assert got == want, f"\nmissing: {sorted(want - got)}\nunexpected: {sorted(got - want)}"


@pytest.mark.parametrize("case", BROKEN, ids=lambda p: p.stem)
def test_broken_file_diagnostics_point_inside_the_file(case: Path) -> None:
    loaded = loader.load(case)
    for d in loaded.diagnostics:
        source = next(s for s in loaded.sources if s.display == d.file) if loaded.sources else None
        lines = (source.text if source else loaded.text).splitlines() or [""]
        assert 1 <= d.line <= len(lines) + 1, d
        assert d.col >= 1, d
        assert d.message.strip(), d


@pytest.mark.parametrize("case", VALID, ids=lambda p: p.stem)
def test_valid_file_has_no_errors(case: Path) -> None:
    loaded = loader.load(case)
    assert loaded.errors == [], [d.format() for d in loaded.errors]


def test_valid_companion_of_the_convert_cycle_differs_only_by_max_sends() -> None:
    broken = loader.load(CORPUS / "broken" / "047_cycle_through_convert_without_max_sends.yaml")
    valid = loader.load(CORPUS / "valid" / "cycle_through_convert_with_max_sends.yaml")
    assert [d.code for d in broken.diagnostics] == ["unbounded-cycle"]
    assert valid.ok and valid.diagnostics == []
    assert broken.campaign is not None and valid.campaign is not None
    assert broken.campaign.subcampaigns == valid.campaign.subcampaigns
    assert valid.campaign.settings.max_sends == 4


def test_segment_file_validates_on_its_own() -> None:
    loaded = loader.load(CORPUS / "valid" / "segment_file.yaml")
    assert loaded.is_segment_file
    assert loaded.errors == []


# ------------------------------------------------------------------ the command line


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("broken/001_yaml_indented_too_far.yaml", 1),
        ("broken/035_edge_target_unknown.yaml", 1),
        ("broken/065_include_cycle.yaml", 1),
        ("broken/064_too_many_actions.yaml", 0),  # a warning only
        ("broken/083_beyond_followup_cap.yaml", 0),  # a warning only
        ("valid/spec_example.yaml", 0),
    ],
)
def test_validate_exit_status_is_1_on_errors_and_0_on_warnings_only(case: str, status: int) -> None:
    path = CORPUS / case
    code, stdout, _ = run_cli(str(path.relative_to(ROOT)))
    assert code == status
    for line in expected_lines(path):
        if not line.startswith("segments/"):
            assert f"{path.relative_to(ROOT)}:{line}" in stdout.splitlines()


def test_validate_prints_file_line_col_severity_message() -> None:
    case = CORPUS / "broken" / "036_start_unknown.yaml"
    code, stdout, stderr = run_cli(str(case.relative_to(ROOT)))
    assert code == 1
    assert stdout.splitlines() == [
        "tests/corpus/broken/036_start_unknown.yaml:10:12: error: start 'helo' names no node "
        "of this sub-campaign; did you mean 'hello'?"
    ]
    assert "1 file checked: 1 error, 0 warnings" in stderr


def test_validate_exits_2_for_a_missing_file(tmp_path: Path) -> None:
    code, _, stderr = run_cli(str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "nope.yaml" in stderr


def test_validate_exits_2_for_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("campaign: caf\xe9\ntitle: Café\n".encode("latin-1"))
    code, _, stderr = run_cli(str(path))
    assert code == 2
    assert "not UTF-8" in stderr


def test_validate_exits_2_when_one_of_several_files_is_unreadable(tmp_path: Path) -> None:
    good = CORPUS / "valid" / "followup_loop.yaml"
    code, _, _ = run_cli(str(good), str(tmp_path / "missing.yaml"))
    assert code == 2


def test_validate_json_output_has_the_documented_keys() -> None:
    case = CORPUS / "broken" / "035_edge_target_unknown.yaml"
    warn = CORPUS / "broken" / "064_too_many_actions.yaml"
    code, stdout, _ = run_cli(str(case), str(warn), "--format", "json")
    assert code == 1
    out = json.loads(stdout)
    assert set(out) == {"files", "diagnostics", "unreadable", "errors", "warnings"}
    assert (out["errors"], out["warnings"]) == (1, 1)
    assert out["unreadable"] == []
    assert [f["ok"] for f in out["files"]] == [False, True]
    assert {"file", "campaign", "ok", "segment_file"} <= set(out["files"][0])
    assert out["files"][1]["campaign"] == "too-many-actions"
    for d in out["diagnostics"]:
        assert set(d) == {"file", "line", "col", "severity", "message", "code"}
    error = next(d for d in out["diagnostics"] if d["severity"] == "error")
    assert (error["line"], error["col"], error["code"]) == (14, 24, "unknown-node")


def test_validate_json_lists_unreadable_files(tmp_path: Path) -> None:
    code, stdout, _ = run_cli(str(tmp_path / "gone.yaml"), "--format", "json")
    assert code == 2
    out = json.loads(stdout)
    assert len(out["unreadable"]) == 1 and "gone.yaml" in out["unreadable"][0]


def test_validating_a_folder_reports_every_file_at_once() -> None:
    folder = CORPUS / "broken"
    code, stdout, _ = run_cli(str(folder.relative_to(ROOT)), "--format", "json")
    assert code == 1
    out = json.loads(stdout)
    assert len(out["files"]) == len(BROKEN)  # top-level files only, not segments/
    files_with_diagnostics = {d["file"] for d in out["diagnostics"]}
    for case in BROKEN:
        shown = str(case.relative_to(ROOT))
        assert any(f["file"] == shown for f in out["files"]), shown
    # Each case has at least one diagnostic of its own or of a segment file it includes.
    expected_in_case = {
        str(case.relative_to(ROOT))
        for case in BROKEN
        if any(not line.startswith("segments/") for line in expected_lines(case))
    }
    assert expected_in_case <= files_with_diagnostics
    total = sum(len(expected_lines(case)) for case in BROKEN)
    assert len(out["diagnostics"]) == total


def test_validating_the_valid_folder_exits_0() -> None:
    code, _, stderr = run_cli(str((CORPUS / "valid").relative_to(ROOT)))
    assert code == 0
    assert f"{len(VALID)} files checked: 0 errors" in stderr


def test_template_that_would_exhaust_memory_is_refused_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text(
        """
campaign: huge
title: Huge
subcampaigns:
  main:
    trigger: {event: signup}
    start: a
    nodes:
      a: {notification: {title: "{{ 'x' * 10**12 }}", body: "{{ '%0999999999d' % 1 }}"}}
""",
        encoding="utf-8",
    )
    loaded = loader.load(path)  # the worst-case render hits the limits: errors, no traceback
    assert [(d.line, d.code) for d in loaded.errors] == [(9, "template"), (9, "template")]
    assert all("template exceeds a limit" in d.message for d in loaded.errors)


# ------------------------------------------------------------------ broadcasts

BROADCAST = """\
campaign: xmas
title: Christmas
settings:
  schedule: "once {moment}"
  timezone: {timezone}
segments:
  everyone: {{match: {{tag: subscriber}}}}
subcampaigns:
  main:
    segment: everyone
    start: hello
    nodes:
      hello: {{notification: {{title: Hello}}}}
"""


@pytest.mark.parametrize(
    ("moment", "timezone", "message"),
    [
        (
            "2027-03-28T02:30",
            "Europe/Berlin",
            "once 2027-03-28T02:30 does not exist in Europe/Berlin: the clocks go forward 1 h "
            "that night and skip it; write the moment with an offset, e.g. once "
            "2027-03-28T02:30+01:00 (03:30 there), or another time",
        ),
        (
            "2026-10-25T02:30",
            "Europe/Berlin",
            "once 2026-10-25T02:30 happens twice in Europe/Berlin: the clocks go back 1 h that "
            "night; write the moment with an offset: once 2026-10-25T02:30+02:00 (the first) "
            "or once 2026-10-25T02:30+01:00 (the second)",
        ),
        (  # New York's clocks go forward on the second Sunday of March, at 02:00
            "2027-03-14T02:15",
            "America/New_York",
            "once 2027-03-14T02:15 does not exist in America/New_York: the clocks go forward "
            "1 h that night and skip it; write the moment with an offset, e.g. once "
            "2027-03-14T02:15-05:00 (03:15 there), or another time",
        ),
    ],
)
def test_a_broadcast_moment_a_dst_change_skips_or_repeats_is_an_error_at_its_value(
    tmp_path: Path, moment: str, timezone: str, message: str
) -> None:
    path = tmp_path / "xmas.yaml"
    path.write_text(BROADCAST.format(moment=moment, timezone=timezone), encoding="utf-8")
    loaded = loader.load(path)
    assert [(d.line, d.col, d.code, d.message) for d in loaded.errors] == [
        (4, 13, "once-dst", message)
    ]


@pytest.mark.parametrize(
    "moment", ["2027-03-28T02:30+01:00", "2026-10-25T02:30+02:00", "2026-10-25T01:30Z"]
)
def test_a_broadcast_moment_with_an_offset_is_one_instant_whatever_the_timezone(
    tmp_path: Path, moment: str
) -> None:
    path = tmp_path / "xmas.yaml"
    path.write_text(BROADCAST.format(moment=moment, timezone="Europe/Berlin"), encoding="utf-8")
    assert loader.load(path).errors == []


def test_a_broadcast_moment_in_the_past_is_a_warning_and_a_future_one_is_silent(
    tmp_path: Path,
) -> None:
    path = tmp_path / "xmas.yaml"
    path.write_text(BROADCAST.format(moment="2021-12-24T10:00", timezone="UTC"), encoding="utf-8")
    past = loader.load(path)
    assert past.ok and [(d.severity, d.code) for d in past.diagnostics] == [
        ("warning", "once-past")
    ]
    assert "has already passed in the earliest timezones (UTC+14: 2021-12-23 20:00 UTC)" in (
        past.diagnostics[0].message
    )
    path.write_text(BROADCAST.format(moment="2990-12-24T10:00", timezone="UTC"), encoding="utf-8")
    assert loader.load(path).diagnostics == []

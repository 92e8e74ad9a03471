"""`campaign schema`: a JSON Schema that editors use to complete and check keys while authors type.

It must be a valid Draft 2020-12 schema, accept every valid campaign (and segment
file), and reject every key the loader rejects as unknown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.language import loader
from orchestrator.language.spec import json_schema
from tests.helpers import CORPUS, ROOT

SPEC = ROOT.parent / "shared" / "spec" / "campaign-graph.md"
VALID = sorted((CORPUS / "valid").glob("*.yaml")) + sorted((CORPUS / "valid").glob("*/*.yaml"))
SHIPPED = sorted((ROOT / "campaign_graphs").glob("*.yaml"))
UNKNOWN_KEY_CODES = {"unknown-key", "node-kind", "rule-kind"}


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    return Draft202012Validator(json_schema())


def all_errors(errors: Iterator[ValidationError]) -> Iterator[ValidationError]:
    """Errors and, for oneOf/anyOf failures, the errors of each alternative."""
    for error in errors:
        yield error
        yield from all_errors(iter(error.context or []))


def unknown_key_cases() -> list[tuple[Path, Path, str]]:
    """(case, file holding the key, key) for each unknown key the loader reports in the corpus."""
    cases = []
    for case in sorted((CORPUS / "broken").glob("*.yaml")):
        loaded = loader.load(case)
        for d in loaded.diagnostics:
            if d.code not in UNKNOWN_KEY_CODES:
                continue
            source = next(s for s in loaded.sources if s.display == d.file)
            line = source.text.splitlines()[d.line - 1]
            key = re.match(r"[\w-]+", line[d.col - 1 :])
            assert key, f"{case.name}: no key at {d.line}:{d.col}"
            cases.append((case, source.path, key.group()))
    return cases


UNKNOWN_KEYS = unknown_key_cases()


def test_schema_command_prints_a_valid_draft_2020_12_schema() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    Draft202012Validator.check_schema(schema)
    assert schema == json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("path", VALID + SHIPPED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_schema_accepts_every_valid_file(path: Path, validator: Draft202012Validator) -> None:
    if path in SHIPPED:
        assert loader.load(path).ok, f"{path.name} does not validate"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
    assert errors == []


def test_spec_example_in_the_corpus_is_the_one_in_the_spec(
    validator: Draft202012Validator,
) -> None:
    if not SPEC.exists():
        pytest.skip("shared spec not available")
    match = re.search(r"```yaml\n(.*?)```", SPEC.read_text(encoding="utf-8"), re.S)
    assert match
    from_spec = yaml.safe_load(match.group(1))
    assert from_spec == yaml.safe_load((CORPUS / "valid" / "spec_example.yaml").read_text())
    assert list(validator.iter_errors(from_spec)) == []


def test_the_corpus_has_unknown_key_cases_for_the_schema() -> None:
    assert len(UNKNOWN_KEYS) >= 12


@pytest.mark.parametrize(
    ("case", "file", "key"), UNKNOWN_KEYS, ids=[f"{c.stem}-{k}" for c, _, k in UNKNOWN_KEYS]
)
def test_schema_rejects_the_unknown_keys_the_loader_rejects(
    case: Path, file: Path, key: str, validator: Draft202012Validator
) -> None:
    data = yaml.safe_load(file.read_text(encoding="utf-8"))
    errors = list(all_errors(validator.iter_errors(data)))
    assert errors, f"schema accepts {file.name}"
    if case.name.startswith("075"):  # an edge indented as a node id: rejected as a node
        return
    assert any(repr(key) in e.message for e in errors), [e.message for e in errors]


def minimal(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "campaign": "c",
        "title": "T",
        "segments": {"everyone": {"match": {"tag": "x"}}},
        "subcampaigns": {
            "main": {
                "segment": "everyone",
                "start": "hello",
                "nodes": {"hello": {"notification": {"title": "Hi"}}},
            }
        },
    }
    doc.update(changes)
    return doc


def test_schema_accepts_a_minimal_campaign(validator: Draft202012Validator) -> None:
    assert list(validator.iter_errors(minimal())) == []


@pytest.mark.parametrize(
    ("what", "nodes"),
    [
        ("node id with a space", {"say hello": {"notification": {"title": "Hi"}}}),
        ("node id end", {"end": {"notification": {"title": "Hi"}}}),
    ],
)
def test_schema_rejects_node_ids_the_loader_rejects(
    what: str, nodes: dict[str, Any], validator: Draft202012Validator
) -> None:
    doc = minimal()
    doc["subcampaigns"]["main"]["nodes"] = nodes
    assert list(validator.iter_errors(doc)), what


def test_schema_rejects_a_segment_name_that_is_not_an_id(
    validator: Draft202012Validator,
) -> None:
    doc = minimal(segments={"every one": {"match": {"tag": "x"}}})
    assert list(validator.iter_errors(doc))


def test_schema_requires_an_entry_for_each_subcampaign(validator: Draft202012Validator) -> None:
    doc = minimal()
    del doc["subcampaigns"]["main"]["segment"]
    assert list(validator.iter_errors(doc))
    doc["subcampaigns"]["main"]["trigger"] = {"event": "signup"}
    assert list(validator.iter_errors(doc)) == []


def test_schema_tells_segment_files_from_campaigns(validator: Draft202012Validator) -> None:
    segment_file = {"segments": {"everyone": {"match": {"tag": "x"}}}}
    assert list(validator.iter_errors(segment_file)) == []
    assert list(validator.iter_errors({**segment_file, "title": "T"}))  # half a campaign
    assert list(validator.iter_errors({"segments": {}, "subcampaign": {}}))

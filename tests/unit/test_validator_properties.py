"""Properties of the validator, checked on generated campaigns.

(a) Every campaign built by the rules of the language validates without errors:
    all nodes reachable, a path to `end` from every start, every cycle passes a
    notification node and leaves it by `on_no_convert` (or max_sends is set).
(b) No mutation of a valid file makes the loader raise: it returns diagnostics,
    each with a line and column of at least 1 and a message.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from orchestrator.language import loader
from orchestrator.language.yamlpos import CoreLoader
from tests.helpers import CORPUS

pytestmark = pytest.mark.slow  # about 30 s

END = "end"
SEGMENTS = ["everyone", "buyers", "photographers", "small_business"]
SEGMENT_RULES: dict[str, Any] = {
    "everyone": {"tag": "subscriber"},
    "buyers": {"event": "purchase", "within": "30d", "at_least": 2, "where": {"currency": "EUR"}},
    "photographers": {"any": [{"tag": "photographer"}, {"attr": "industry", "eq": "photo"}]},
    "small_business": {
        "all": [{"segment": "buyers"}, {"attr": "size", "lte": 50}, {"not": {"tag": "x"}}]
    },
}
TEMPLATES = [
    "Hello",
    "Hi {{ subscriber.attributes.name | default('there') }}",
    "{{ campaign.title }}: news",
    "Node {{ node.id }} for {{ subscriber.id }}",
    "{% if subscriber.tags %}Tagged{% else %}Plain{% endif %}",
]
TRIGGER_TEMPLATES = ["About {{ trigger.properties.product | default('your cart') }}"]
PROFILE = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

ids = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(lambda s: s != END)
plain_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="{}%#"),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip())


class Dumper(yaml.SafeDumper):
    """Writes YAML that the loader's YAML 1.2 core schema reads back as the same values.

    (PyYAML's own dumper follows YAML 1.1 and leaves `1e5` unquoted, which 1.2 reads as
    a number.)
    """


Dumper.yaml_implicit_resolvers = CoreLoader.yaml_implicit_resolvers


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("campaign-props")
    shutil.copytree(CORPUS / "valid" / "segments", folder / "segments")
    return folder


def load_text(folder: Path, text: str) -> loader.LoadedCampaign:
    path = folder / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return loader.load(path)


# ------------------------------------------------------------------ valid campaigns


@st.composite
def notification(draw: st.DrawFn, *, triggered: bool) -> dict[str, Any]:
    title = draw(st.sampled_from(TEMPLATES + (TRIGGER_TEMPLATES if triggered else [])) | plain_text)
    out: dict[str, Any] = {"title": title}
    if draw(st.booleans()):
        out["body"] = draw(st.sampled_from(TEMPLATES) | plain_text)
    if draw(st.booleans()):
        out["url"] = draw(
            st.sampled_from(
                ["https://example.com/", "http://example.com/a?b=c", "{{ 'https://x.org' }}"]
            )
        )
    n_actions = draw(st.integers(0, 2))
    if n_actions:
        out["actions"] = [{"action": f"a{i}", "title": f"Action {i}"} for i in range(n_actions)]
    return out


@st.composite
def valid_campaign(draw: st.DrawFn) -> dict[str, Any]:
    bounded = draw(st.booleans())  # with max_sends, loops through convert edges are allowed
    n_subs = draw(st.integers(1, 3))
    all_ids = draw(
        st.lists(ids, min_size=n_subs * 6 + n_subs, max_size=n_subs * 6 + n_subs, unique=True)
    )
    sub_names, node_pool = all_ids[:n_subs], all_ids[n_subs:]
    subs: dict[str, Any] = {}
    order: list[str] = []  # every node id, in a global order; edges go forward, loops go back
    layout: list[tuple[str, list[str], bool]] = []
    for index, name in enumerate(sub_names):
        size = draw(st.integers(1, 6))
        members = node_pool[index * 6 : index * 6 + size]
        triggered = draw(st.booleans())
        layout.append((name, members, triggered))
        order.extend(members)
    position = {node_id: i for i, node_id in enumerate(order)}

    for name, members, triggered in layout:
        kinds = {
            m: draw(st.sampled_from(["notification", "split", "branch", "wait"])) for m in members
        }
        children: dict[str, list[str]] = {m: [] for m in members}
        for j, member in enumerate(members[1:], start=1):
            children[members[draw(st.integers(0, j - 1))]].append(member)  # a spanning tree
        nodes: dict[str, Any] = {}
        for member in members:
            later = [n for n in order if position[n] > position[member]]
            must = children[member]
            kind = kinds[member]
            if (kind == "notification" and len(must) > 2) or (kind == "wait" and len(must) > 1):
                kind = "branch"
            if kind == "split" and not later:
                kind = "notification"  # nothing left to split between but `end`
            back = order[: position[member] + 1] if bounded else [member]
            nodes[member] = build_node(draw, kind, must, later, back, triggered)
        sub: dict[str, Any] = {"start": members[0], "nodes": nodes}
        if triggered:
            sub["trigger"] = {
                "event": "cart_abandoned",
                "delay": draw(st.sampled_from(["0s", "1h"])),
            }
            if draw(st.booleans()):
                sub["segment"] = draw(st.sampled_from(SEGMENTS))
        else:
            sub["segment"] = draw(st.sampled_from(SEGMENTS))
        subs[name] = sub

    doc: dict[str, Any] = {
        "campaign": draw(st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True)),
        "title": draw(plain_text),
        "segments": {name: {"match": rule} for name, rule in SEGMENT_RULES.items()},
        "subcampaigns": subs,
    }
    settings_: dict[str, Any] = {}
    if bounded:
        settings_["max_sends"] = draw(st.integers(1, 10))
    if draw(st.booleans()):
        settings_["followup_cap"] = draw(st.integers(0, 5))
        settings_["quiet_hours"] = {"start": "21:00", "end": "08:00"}
        settings_["holdout"] = draw(st.sampled_from(["5%", 0.1, 0]))
        settings_["timezone"] = draw(st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"]))
        settings_["urgency"] = draw(st.sampled_from(["very-low", "low", "normal", "high"]))
        settings_["reentry"] = draw(st.sampled_from(["never", "30d", "1d12h"]))
    if settings_:
        doc["settings"] = settings_
    if draw(st.booleans()):
        doc["include"] = ["segments/common.yaml"]
    return doc


def build_node(
    draw: st.DrawFn,
    kind: str,
    must: list[str],
    later: list[str],
    back: list[str],
    triggered: bool,
) -> dict[str, Any]:
    """One node whose edges include `must` (its children in the spanning tree).

    Other edges go forward (`later` or `end`); a notification node may loop back to
    one of `back`: itself by no-convert when max_sends is not set (bounded by the
    follow-up cap), any earlier node by either edge when it is.
    """
    forward = st.sampled_from([*later, END])
    if kind == "notification":
        targets = [*must, *(draw(forward) for _ in range(2 - len(must)))]
        node: dict[str, Any] = {"notification": draw(notification(triggered=triggered))}
        convert, no_convert = targets if draw(st.booleans()) else targets[::-1]
        if not must and draw(st.booleans()):
            # The other edge still leads forward, so `end` stays reachable.
            target = draw(st.sampled_from(back))
            if len(back) > 1 and draw(st.booleans()):
                convert = target
            else:
                no_convert = target
        if convert != END or draw(st.booleans()):
            node["on_convert"] = convert
        if no_convert != END or draw(st.booleans()):
            delay = draw(st.sampled_from([None, "1d", "12h30m"]))
            node["on_no_convert"] = (
                no_convert if delay is None else {"to": no_convert, "delay": delay}
            )
        if draw(st.booleans()):
            node["window"] = draw(st.sampled_from(["1h", "2d", "1w"]))
        return node
    if kind == "wait":
        target = must[0] if must else draw(forward)
        return {"wait": draw(st.sampled_from(["30m", "1d", "2w"])), "next": target}
    if kind == "branch":
        targets = [*must] or [draw(forward)]
        cases: list[dict[str, Any]] = [
            {"segment": draw(st.sampled_from(SEGMENTS)), "to": t} for t in targets
        ]
        cases.append({"else": draw(forward)})
        return {"branch": cases}
    targets = list(dict.fromkeys(must))
    pool = [t for t in [*later, END] if t not in targets]
    fewest = max(0, 2 - len(targets))
    targets += draw(
        st.lists(st.sampled_from(pool), unique=True, min_size=fewest, max_size=max(fewest, 2))
    )
    cuts = sorted(
        draw(
            st.lists(
                st.integers(1, 99),
                min_size=len(targets) - 1,
                max_size=len(targets) - 1,
                unique=True,
            )
        )
    )
    weights = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    if draw(st.booleans()):
        return {"split": {t: f"{w}%" for t, w in zip(targets, weights, strict=True)}}
    return {"split": dict(zip(targets, weights, strict=True))}


@PROFILE
@given(doc=valid_campaign())
def test_generated_valid_campaigns_have_no_errors(doc: dict[str, Any], workdir: Path) -> None:
    text = dump(doc)
    loaded = load_text(workdir, text)
    assert [d.format() for d in loaded.errors] == [], text
    assert loaded.campaign is not None


# ------------------------------------------------------------------ mutations


def paths_of(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            out.extend(paths_of(value, (*prefix, key)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            out.extend(paths_of(value, (*prefix, index)))
    return out


def parent_and_key(data: Any, path: tuple[Any, ...]) -> tuple[Any, Any]:
    for part in path[:-1]:
        data = data[part]
    return data, path[-1]


any_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.sampled_from([END, "end ", "1d", "0s", "{{", "{{ trigger.x }}", "100%", "-5", "Europe/X"]),
)
garbage = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12
) | st.sampled_from(
    [
        "\t",
        ": ",
        "- ",
        "{",
        "[",
        '"',
        "'",
        "&a ",
        "*a",
        "!!python/object ",
        "---\n",
        "? ",
        "|\n",
        "\n  x:",
    ]
)


@st.composite
def mutated_text(draw: st.DrawFn) -> str:
    source = draw(st.sampled_from(["generated", "corpus"]))
    if source == "corpus":
        files = sorted((CORPUS / "valid").glob("*.yaml"))
        base_text = draw(st.sampled_from(files)).read_text(encoding="utf-8")
        data = yaml.safe_load(base_text)
    else:
        # A deep copy: the strategy shares constant parts between examples, and mutating
        # them in place would make generation depend on earlier examples.
        data = copy.deepcopy(draw(valid_campaign()))
        base_text = dump(data)
    mutation = draw(
        st.sampled_from(["delete", "rename", "retype", "retarget", "garbage", "truncate"])
    )
    if mutation == "garbage":
        at = draw(st.integers(0, len(base_text)))
        return base_text[:at] + draw(garbage) + base_text[at:]
    if mutation == "truncate":
        return base_text[: draw(st.integers(0, len(base_text)))]
    paths = [p for p in paths_of(data) if p]
    if mutation == "retarget":
        edges = [
            p
            for p in paths
            if p[-1] in ("on_convert", "on_no_convert", "next", "to", "else", "start")
        ]
        paths = edges or paths
    path = draw(st.sampled_from(paths))
    parent, key = parent_and_key(data, path)
    if mutation == "delete":
        del parent[key]
    elif mutation == "rename" and isinstance(parent, dict):
        value = parent.pop(key)
        parent[draw(st.text(max_size=12) | ids | st.integers(0, 9))] = value
    elif mutation == "retarget":
        parent[key] = draw(ids | st.sampled_from([END, "", "End", "missing"]))
    else:
        parent[key] = draw(any_value)
    return dump(data)


@PROFILE
@given(text=mutated_text())
def test_mutated_documents_give_diagnostics_never_a_traceback(text: str, workdir: Path) -> None:
    loaded = load_text(workdir, text)  # must not raise
    lines = max(len(text.splitlines()), 1)
    for d in loaded.diagnostics:
        assert d.line >= 1 and d.col >= 1, d
        assert d.message.strip(), d
        assert d.severity in ("error", "warning"), d
        if d.file == loaded.display:
            assert d.line <= lines + 1, (d, text)
    if loaded.campaign is None:
        assert loaded.errors or loaded.is_segment_file


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_arbitrary_text_gives_diagnostics_never_a_traceback(text: str, workdir: Path) -> None:
    loaded = load_text(workdir, text)
    assert loaded.diagnostics or loaded.is_segment_file, "arbitrary text is not a campaign"
    for d in loaded.diagnostics:
        assert d.line >= 1 and d.col >= 1 and d.message.strip(), d

"""`campaign experiment promote CAMPAIGN SPLIT ARM`: end a split's test with its winner.

The campaign file's text gets `winner: ARM` in the split's value and stays as it was
everywhere else, byte for byte (comments, key order, quoting, the other nodes): the
short form `{a: 50, b: 50}` becomes the long form around it, `{arms: {a: 50, b: 50},
winner: b}`. Nodes are always in the campaign file itself (an included file holds
segments only), so that file is the one rewritten. The new text must load with that
winner and nothing else changed before it is written (atomically); then it is
registered as the campaign's new version and the journeys in flight move to it as
`campaign migrate` moves them (every node is kept, so each continues where it is; a
journey on a losing arm finishes its path), and the promotion is recorded
(`campaign_action`, action `promote`) with who, why and the experiment's figures at
that moment. From the next tick every journey that reaches the split takes the winner
(`orchestrator.engine.state.pick_split`). Should anything fail after the write, the
file gets its old text back and the database keeps nothing of the promotion.
"""

from __future__ import annotations

import codecs
import contextlib
import difflib
import json
import math
import os
import re
import secrets
from bisect import bisect_left
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from orchestrator import errors
from orchestrator.app import control, versions
from orchestrator.app.experiments import experiments
from orchestrator.app.promotions import PROMOTE, Promotion
from orchestrator.app.service import Context, campaign_file, load_current
from orchestrator.errors import CampaignError, ValidationError
from orchestrator.language import loader
from orchestrator.language.document import display_name, read_text
from orchestrator.language.spec import Campaign, SplitNode
from orchestrator.store import repo

# plain scalars the YAML 1.2 core schema the loader follows does not read as text
_NOT_TEXT = re.compile(r"true|True|TRUE|false|False|FALSE|null|Null|NULL|~|")
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


class PromotionError(CampaignError):
    """A promotion that cannot be made; nothing was changed."""


class UnknownCampaignError(PromotionError):
    """No campaign file of that id in the campaigns folder."""


class NotASplitError(PromotionError):
    """The node named is not a split node of the campaign."""


class NotAnArmError(PromotionError):
    """The arm named is not one of the split's arms."""


class FinishedTestError(PromotionError):
    """The split already has a winner."""


def promote(
    ctx: Context,
    campaign_id: str,
    split: str,
    arm: str,
    *,
    by: str,
    reason: str,
    now: datetime,
    dry_run: bool = False,
) -> Promotion:
    """Make `arm` the winner of `split` in campaign `campaign_id` (see the module's text);
    a PromotionError (or the file's ValidationError or UnreadableFileError) changes
    nothing. With `dry_run` only the diff and the figures, nothing written."""
    by, reason = control.checked_words(by, reason)
    path = _campaign_file(ctx, campaign_id)
    loaded = loader.load(path)
    if loaded.is_segment_file:
        raise PromotionError(f"{loaded.display}: a segments file, not a campaign")
    if not loaded.ok or loaded.campaign is None:
        errors = loaded.errors
        first = errors[0].format() if errors else "does not validate"
        diagnostics: list[object] = list(errors)
        raise ValidationError(
            f"{loaded.display}: does not validate ({len(errors)} error"
            f"{'s' * (len(errors) != 1)}; first: {first}): fix it before promoting a winner",
            diagnostics,
        )
    model = loaded.campaign
    node = _split_node(model, loaded.display, split, arm)
    text = loaded.text
    new_text = with_winner(text, model.subcampaign_of(split), split, arm)
    _check_rewrite(path, new_text, model, split, arm)
    found = [e for e in experiments(ctx, model, now=now) if e.split == split]
    figures = _plain(found[0].as_dict()) if found else {"split": split, "arms": dict(node.arms)}
    diff = "".join(
        difflib.unified_diff(
            text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=loaded.display,
            tofile=f"{loaded.display} (winner: {arm})",
        )
    )
    done = Promotion(
        model.campaign, split, arm, now, by, reason, figures, loaded.display, diff, False
    )
    if dry_run:
        return done
    real = path.resolve()
    old = real.read_bytes()
    if old.decode("utf-8-sig", "replace") != text:
        raise PromotionError(f"{loaded.display}: changed while it was read; nothing changed")
    bom = codecs.BOM_UTF8 if old.startswith(codecs.BOM_UTF8) else b""
    new_data = bom + new_text.encode("utf-8")
    _write(real, new_data)
    try:
        current = load_current(ctx, path)
        if current.loaded is None or current.loaded.text != new_text:
            raise PromotionError(f"{loaded.display}: changed by another writer meanwhile")
        migration = versions.plan(ctx, campaign_id)
        kept = versions.MigrationPlan(migration.campaign, migration.to_version, migration.moves)
        with ctx.session() as s, s.begin():
            versions.apply_in(s, kept, now=now)
            repo.add_action(
                s,
                campaign=model.campaign,
                action=PROMOTE,
                at=now,
                by=by,
                reason=reason,
                details={
                    "split": split,
                    "arm": arm,
                    "version": migration.to_version,
                    "moved": len(migration.moves),
                    "figures": figures,
                },
            )
    except BaseException as exc:
        try:
            if real.read_bytes() == new_data:  # not another writer's text since
                _write(real, old)
        except OSError as failed:
            raise PromotionError(
                f"{loaded.display}: the promotion failed ({exc}) and the old text could not "
                f"be put back ({failed.strerror or failed}): the file names the winner, the "
                "database does not"
            ) from exc
        raise
    done = replace(
        done,
        applied=True,
        version=migration.to_version,
        moved=len(migration.moves),
        left=len(migration.ends),
    )
    if ctx.audit is not None:
        keep = ("campaign", "split", "arm", "by", "reason", "version", "moved")
        ctx.audit([{"t": now.isoformat(), "type": PROMOTE} | {k: done.as_dict()[k] for k in keep}])
    return done


# ------------------------------------------------------------------ checks


def _campaign_file(ctx: Context, campaign_id: str) -> Path:
    try:
        return campaign_file(ctx, campaign_id)
    except errors.UnknownCampaignError as exc:
        raise UnknownCampaignError(str(exc)) from None


def _split_node(model: Campaign, where: str, split: str, arm: str) -> SplitNode:
    nodes = model.all_nodes()
    splits = [n for n, node in nodes.items() if isinstance(node, SplitNode)]
    node = nodes.get(split)
    if not isinstance(node, SplitNode):
        what = "no such node" if node is None else f"a {type(node).__name__} node"
        named = f"its split nodes: {', '.join(splits)}" if splits else "it has no split node"
        raise NotASplitError(
            f"{where}: {split[:80]!r} is not a split node of {model.campaign} ({what}; {named})"
        )
    winner = node.options.winner
    if winner is not None:
        raise FinishedTestError(
            f"{where}: the test is over: split {split} was promoted to {winner}"
        )
    if arm not in node.arms:
        raise NotAnArmError(
            f"{where}: {arm[:80]!r} is not an arm of split {split} "
            f"(its arms: {', '.join(node.arms)})"
        )
    return node


def _check_rewrite(path: Path, text: str, old: Campaign, split: str, arm: str) -> None:
    """The rewritten text loads, with the winner, and says nothing else differently."""
    target = path.resolve()

    def reader(p: Path) -> str:
        return text if p.resolve() == target else read_text(p)

    new = loader.load(path, reader=reader)
    node = new.campaign.all_nodes().get(split) if new.ok and new.campaign else None
    if new.campaign is None or not isinstance(node, SplitNode):
        first = new.errors[0].format() if new.errors else "the split is gone"
        raise PromotionError(f"{display_name(path)}: the rewritten file does not load ({first})")
    before, after = old.model_dump(), new.campaign.model_dump()
    sub = old.subcampaign_of(split)
    was = before["subcampaigns"][sub]["nodes"].pop(split)
    after["subcampaigns"].get(sub, {}).get("nodes", {}).pop(split, None)
    old_node = old.all_nodes()[split]
    assert isinstance(old_node, SplitNode)
    expected = {**old_node.options.model_dump(), "winner": arm}
    if (
        before != after
        or node.options.model_dump() != expected
        or was.get("description") != node.description
    ):
        raise PromotionError(
            f"{display_name(path)}: the rewritten file would say more than the winner; "
            "add `winner: " + arm + "` to the split by hand"
        )


def _plain(value: Any) -> Any:
    """`value` as JSON keeps it: a number that is not finite as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _write(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder, renamed over `path` (its mode
    kept): a reader sees the old text or the new, never part of one."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with temporary.open("xb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, path.stat().st_mode & 0o777)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


# ------------------------------------------------------------------ the text


def with_winner(text: str, subcampaign: str, split: str, arm: str) -> str:
    """`text` with `winner: ARM` in the value of split node `split` (of `subcampaign`),
    every other character as it was. PromotionError where the value cannot be edited
    safely (written through a YAML alias, or laid out in a way not handled)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)  # the structure and its marks
    except yaml.YAMLError as exc:
        raise PromotionError(f"the campaign file does not parse: {exc}") from None
    if root is None:
        raise PromotionError("the campaign file is empty")
    path = ("subcampaigns", subcampaign, "nodes", split, "split")
    chain: list[yaml.Node] = [root]
    for key in path:
        found = _child(chain[-1], key)
        if found is None:
            raise PromotionError(f"split {split}: not found at {'.'.join(path)} in the text")
        chain.append(found)
    shared = _shared(root)
    if any(id(n) in shared for n in chain):
        raise PromotionError(
            f"split {split} is written through a YAML alias (*name): write it out in full "
            "where it is used, then promote"
        )
    value = chain[-1]
    if not isinstance(value, yaml.MappingNode) or not value.value:
        raise PromotionError(f"split {split}: its value is not a mapping in the text")
    word = _scalar_text(arm)
    nl = "\r\n" if "\r\n" in text else "\n"
    arms = _child(value, "arms")
    if isinstance(arms, yaml.MappingNode):  # the long form
        present = _child(value, "winner")
        if present is not None:  # `winner:` with no value (null)
            start, end = present.start_mark.index, present.end_mark.index
            if end > start:
                return text[:start] + word + text[end:]
            glue = " " if text[start - 1 : start] == ":" else ": "
            return text[:start] + glue + word + text[start:]
        if value.flow_style:
            brace = _flow_open(text, value)
            return text[: brace + 1] + f"winner: {word}, " + text[brace + 1 :]
        column = value.value[0][0].start_mark.column
        last = _last_end(value)
        if last is None:  # ends in a | or > block: the line goes before the first key
            at = _line_start(text, value.value[0][0].start_mark.index, split)
            return f"{text[:at]}{' ' * column}winner: {word}{nl}{text[at:]}"
        return _insert_line(text, _line_end(text, last), " " * column + f"winner: {word}", nl)
    if value.flow_style:  # the short form in braces: the long form around it
        brace = _flow_open(text, value)
        end = value.end_mark.index
        return text[:brace] + "{arms: " + text[brace:end] + f", winner: {word}}}" + text[end:]
    # the short form as a block: `arms:` above its lines, indented two more
    first = value.value[0][0].start_mark
    start = _line_start(text, first.index, split)
    last = _last_end(value)
    if last is None:
        raise PromotionError(f"split {split}: a weight written as a | or > block; edit by hand")
    stop = _line_end(text, last)
    lines = text[start:stop].splitlines(keepends=True)
    moved = "".join("  " + line if line.strip() else line for line in lines)
    indent = " " * first.column
    head = text[:start] + indent + "arms:" + nl + moved
    return _insert_line(head + text[stop:], len(head), indent + f"winner: {word}", nl)


def _key(node: yaml.Node) -> str | None:
    """A mapping key as the loader names it (a plain `true` is the boolean, named True)."""
    if not isinstance(node, yaml.ScalarNode):
        return None
    value = str(node.value)
    if node.style is None and _NOT_TEXT.fullmatch(value):
        return "null" if value.lower() in ("null", "~", "") else str(value.lower() == "true")
    return value


def _child(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if _key(k) == key:
                found: yaml.Node = v  # the first: a repeated key makes the file invalid
                return found
    return None


def _shared(root: yaml.Node) -> set[int]:
    """The nodes reached more than once (through an alias)."""
    seen: dict[int, int] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        seen[id(node)] = seen.get(id(node), 0) + 1
        if seen[id(node)] > 1:
            continue
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                stack.extend((k, v))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return {key for key, count in seen.items() if count > 1}


def _flow_open(text: str, node: yaml.Node) -> int:
    """Where the `{` of a flow mapping is (after its anchor or tag, if any)."""
    opens = [
        t.start_mark.index
        for t in yaml.scan(text, Loader=yaml.SafeLoader)
        if isinstance(t, yaml.FlowMappingStartToken)
    ]
    at: int = opens[bisect_left(opens, node.start_mark.index)]
    assert text[at] == "{"
    return at


def _last_end(node: yaml.Node) -> int | None:
    """Where the last value written inside a block node ends; None when that is a | or >
    block (whose end the parser places past its trailing lines)."""
    while True:
        if isinstance(node, yaml.MappingNode) and not node.flow_style and node.value:
            node = node.value[-1][1]
        elif isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
            node = node.value[-1]
        elif isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
            return None
        else:
            return int(node.end_mark.index)


def _line_start(text: str, index: int, split: str) -> int:
    start = text.rfind("\n", 0, index) + 1
    if text[start:index].strip(" "):
        raise PromotionError(f"split {split}: its first key does not begin a line; edit by hand")
    return start


def _line_end(text: str, index: int) -> int:
    """Just past the line break that ends the line holding `index` (the text's end when
    there is none)."""
    at = text.find("\n", index)
    return len(text) if at < 0 else at + 1


def _insert_line(text: str, at: int, line: str, nl: str) -> str:
    if at > 0 and not text[:at].endswith("\n"):  # the last line, without a line break
        return text[:at] + nl + line + text[at:]
    return text[:at] + line + nl + text[at:]


def _scalar_text(arm: str) -> str:
    """The arm as the loader reads it back: plain where it can be, else double-quoted."""
    plain = _PLAIN.fullmatch(arm) and not _NOT_TEXT.fullmatch(arm)
    return arm if plain else json.dumps(arm)

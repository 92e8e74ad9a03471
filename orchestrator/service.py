"""The use cases the edges call (CLI, web, Prefect flows): one place that wires side effects in."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from orchestrator import loader, tokens
from orchestrator.config import Config, load_config
from orchestrator.delivery import Delivery
from orchestrator.errors import CampaignError, MissingFileError, UnreadableFileError
from orchestrator.records import EventRecord, RecordError, parse_subscriber
from orchestrator.spec import Campaign
from orchestrator.store import db, migrate, repo

AuditSink = Callable[[list[dict[str, Any]]], None]


@dataclass
class Context:
    """Everything a use case needs from the outside world."""

    config: Config
    engine: Engine
    delivery: Delivery
    audit: AuditSink | None = None
    simulated: bool = False  # simulation: no push subscriptions needed
    _campaigns: dict[int, Campaign] = field(default_factory=dict)
    _secret: str | None = None

    def session(self) -> Session:
        return db.session(self.engine)

    def secret(self) -> str:
        """The HMAC key for links: CAMPAIGN_SECRET, or one generated into the database once."""
        if self._secret is None:
            self._secret = self.config.secret or _stored_secret(self)
        return self._secret

    def campaign_of_version(self, version_id: int, session: Session | None = None) -> Campaign:
        """The campaign model a journey runs on: parsed from the version's stored sources.

        Pass the session of an open transaction (SQLite allows one writer at a time)."""
        if version_id not in self._campaigns:
            if session is None:
                with self.session() as s:
                    row = repo.version(s, version_id)
            else:
                row = repo.version(session, version_id)
            main = str(row.source["main"])
            sources: dict[str, str] = dict(row.source["files"])
            root = Path("/stored-version") / str(version_id)

            def reader(path: Path) -> str:
                key = str(path.resolve().relative_to(root)) if path.is_absolute() else str(path)
                if key not in sources:
                    raise MissingFileError(f"{key}: not in the stored version")
                return sources[key]

            loaded = loader.load(root / main, reader=reader)
            if loaded.campaign is None or not loaded.ok:
                raise CampaignError(f"stored version {version_id} of {row.campaign} does not load")
            self._campaigns[version_id] = loaded.campaign
        return self._campaigns[version_id]


def _stored_secret(ctx: Context) -> str:
    """Generated once per database; concurrent first uses agree on one value."""
    with ctx.session() as s, s.begin():
        return repo.setting_once(s, "secret", tokens.new_secret())


def open_context(
    config: Config | None = None,
    *,
    delivery: Delivery | None = None,
    audit: AuditSink | None = None,
    simulated: bool = False,
) -> Context:
    cfg = config or load_config()
    engine = db.make_engine(cfg.db, durable=not simulated)
    migrate.upgrade(engine)
    if audit is None and cfg.audit_log is not None:
        audit = jsonl_sink(cfg.audit_log)
    if delivery is None:
        from orchestrator.push.setup import WebPushDelivery  # real Web Push unless told otherwise

        delivery = WebPushDelivery(cfg)
    return Context(
        config=cfg,
        engine=engine,
        delivery=delivery,
        audit=audit,
        simulated=simulated,
    )


def jsonl_sink(path: Path) -> AuditSink:
    def write(lines: list[dict[str, Any]]) -> None:
        with path.open("a", encoding="utf-8") as out:
            for line in lines:
                out.write(json.dumps(line, default=str) + "\n")

    return write


# ------------------------------------------------------------------ campaigns


def campaign_paths(ctx: Context, names: list[str] | None = None) -> list[Path]:
    folder = ctx.config.graphs
    if not names:
        return loader.campaign_files([folder])
    out = []
    for name in names:
        candidate = Path(name)
        if candidate.suffix in loader.YAML_SUFFIXES and candidate.exists():
            out.append(candidate)
        else:
            out.append(folder / f"{name}.yaml")
    return out


@dataclass
class CampaignLoad:
    path: Path
    loaded: loader.LoadedCampaign | None
    version_id: int | None
    problem: str | None


def load_current(ctx: Context, path: Path) -> CampaignLoad:
    """Load a campaign file and register its content as a version (new content, new version)."""
    try:
        loaded = loader.load_unchanged(path)
    except UnreadableFileError as exc:
        return CampaignLoad(path, None, None, str(exc))
    if not loaded.ok or loaded.campaign is None:
        first = next((d.format() for d in loaded.errors), "does not validate")
        count = len(loaded.errors)
        return CampaignLoad(
            path,
            loaded,
            None,
            f"does not validate ({count} error{'s' * (count != 1)}; first: {first})",
        )
    stored = {"main": loaded.path.resolve().name, "files": loaded.source_texts()}
    with ctx.session() as s, s.begin():
        version_id = repo.ensure_version(
            s, campaign=loaded.campaign.campaign, content_hash=loaded.content_hash, source=stored
        )
    ctx._campaigns.setdefault(version_id, loaded.campaign)
    return CampaignLoad(path, loaded, version_id, None)


# ------------------------------------------------------------------ subscribers and events


@dataclass
class ImportReport:
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)


def read_jsonl(path: Path) -> Iterator[tuple[int, Any | RecordError]]:
    with path.open("r", encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if not text:
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as exc:
                yield number, RecordError(f"not JSON: {exc.msg} at column {exc.colno}")


def import_subscribers(
    ctx: Context,
    path: Path,
    *,
    batch_size: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Add or update subscribers from JSONL; bad lines are reported and skipped, good ones kept."""
    report = ImportReport()
    batch: list[Any] = []
    seen: dict[str, int] = {}
    allowed = ctx.config.push_allowed_origins

    def flush() -> None:
        if not batch:
            return
        with ctx.session() as s, s.begin():
            added, changed = repo.upsert_subscribers(s, batch)
        report.added += added
        report.changed += changed
        report.unchanged += len(batch) - added - changed
        if progress:
            progress(len(batch))
        batch.clear()

    for number, raw in read_jsonl(path):
        if isinstance(raw, RecordError):
            report.bad.append((number, str(raw)))
            continue
        try:
            record = parse_subscriber(raw, allowed=allowed)
        except RecordError as exc:
            report.bad.append((number, str(exc)))
            continue
        if record.id in seen:
            flush()  # a later line for the same id wins, in file order
        seen[record.id] = number
        batch.append(record)
        if len(batch) >= batch_size:
            flush()
    flush()
    return report


def add_event_batches(
    ctx: Context, batches: list[list[EventRecord]]
) -> list[list[int] | RecordError]:
    """Several requests' events in one transaction; a request naming an unknown subscriber is
    refused whole (its RecordError in its place) and the others are stored."""
    with ctx.session() as s, s.begin():
        known = repo.known_subscribers(s, (r.subscriber_id for b in batches for r in b))
        out: list[list[int] | RecordError] = []
        accepted: list[EventRecord] = []
        sizes: list[int] = []
        for batch in batches:
            missing = sorted({r.subscriber_id for r in batch} - known)
            if missing:
                shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
                out.append(RecordError(f"unknown subscriber{'s' * (len(missing) > 1)}: {shown}"))
                sizes.append(-1)
            else:
                out.append([])
                sizes.append(len(batch))
                accepted.extend(batch)
        ids = iter(repo.add_events(s, accepted))
        for i, size in enumerate(sizes):
            if size >= 0:
                out[i] = [next(ids) for _ in range(size)]
        return out


def add_events(ctx: Context, records: list[EventRecord]) -> list[int]:
    """Record events (all or nothing); unknown subscribers are refused with their ids."""
    with ctx.session() as s, s.begin():
        known = repo.known_subscribers(s, (r.subscriber_id for r in records))
        missing = sorted({r.subscriber_id for r in records} - set(known))
        if missing:
            shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
            raise RecordError(f"unknown subscriber{'s' * (len(missing) > 1)}: {shown}")
        return repo.add_events(s, records)


# ------------------------------------------------------------------ segments


def find_segments(
    ctx: Context, *, campaign: str | None, name: str | None = None
) -> tuple[str, Campaign]:
    """The campaign whose segments to use: the named one, or the only one defining `name`."""
    from orchestrator.errors import ConfigurationError

    paths = campaign_paths(ctx, [campaign]) if campaign is not None else campaign_paths(ctx)
    found: list[Campaign] = []
    for path in paths:
        try:
            loaded = loader.load(path)
        except UnreadableFileError as exc:
            if campaign is not None:
                raise ConfigurationError(str(exc)) from None
            continue
        if loaded.campaign is None or not loaded.ok:
            if campaign is not None:
                raise ConfigurationError(f"{path}: does not validate (run campaign validate)")
            continue
        if name is None or name in loaded.campaign.segments:
            found.append(loaded.campaign)
    if not found:
        where = f"campaign {campaign!r}" if campaign else f"any campaign in {ctx.config.graphs}"
        raise ConfigurationError(
            f"segment {name!r} is not defined in {where}"
            if name
            else f"no campaign found in {where}"
        )
    if len(found) > 1 and name is not None:
        same = {repr(c.segments[name]) for c in found}
        if len(same) > 1:
            names = ", ".join(c.campaign for c in found)
            raise ConfigurationError(
                f"segment {name!r} is defined differently in {names}: pass --campaign"
            )
    return found[0].campaign, found[0]


def export_segment(
    ctx: Context, *, name: str, campaign: str | None, fmt: str, out: Any, now: datetime
) -> int:
    from orchestrator.store import segments

    _, model = find_segments(ctx, campaign=campaign, name=name)
    with ctx.session() as s:
        return segments.export(s, name, segments=model.segments, now=now, fmt=fmt, out=out)  # type: ignore[arg-type]


def segment_overlap(
    ctx: Context, *, campaign: str, now: datetime
) -> tuple[list[str], dict[tuple[str, str], int]]:
    from orchestrator.store import segments

    _, model = find_segments(ctx, campaign=campaign)
    names = list(model.segments)
    with ctx.session() as s:
        return names, segments.overlap(s, names, segments=model.segments, now=now)


# ------------------------------------------------------------------ status


def status(ctx: Context, campaign: str) -> dict[str, Any]:
    with ctx.session() as s:
        return {
            "campaign": campaign,
            "nodes": repo.node_stats(s, campaign),
            "journeys": repo.journey_phases(s, campaign),
            "exits": repo.exit_reasons(s, campaign),
            "sends": repo.send_outcomes(s, campaign),
        }


def drawing_counts(ctx: Context, campaign: Campaign) -> dict[str, dict[str, int]]:
    """Per-node figures for the flowchart, plus each sub-campaign's end node (`end:SUB`)
    with its exits by reason."""
    with ctx.session() as s:
        stats = repo.node_stats(s, campaign.campaign)
    out = dict(stats)
    for sub_name, sub in campaign.subcampaigns.items():
        exits: dict[str, int] = {}
        for node_id in sub.nodes:
            for metric, n in stats.get(node_id, {}).items():
                if metric.startswith("exit:"):
                    reason = metric.removeprefix("exit:")
                    exits[reason] = exits.get(reason, 0) + n
        if exits:
            out[f"end:{sub_name}"] = exits
    return out


def parse_now(value: str | None) -> datetime | None:
    if value is None:
        return None
    from orchestrator.records import parse_time

    return parse_time(value, "--now")

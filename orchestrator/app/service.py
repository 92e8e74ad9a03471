"""The use cases the edges call (CLI, web, Prefect flows): one place that wires side effects in."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.app import tokens
from orchestrator.config import Config, load_config
from orchestrator.delivery import Delivery
from orchestrator.errors import (
    CampaignError,
    ConfigurationError,
    MissingFileError,
    UnknownCampaignError,
    UnreadableFileError,
)
from orchestrator.language import loader
from orchestrator.language.document import LoadedCampaign, display_name
from orchestrator.language.records import (
    EventRecord,
    RecordError,
    SubscriberRecord,
    loads,
    parse_subscriber,
    parse_time,
)
from orchestrator.language.spec import CAMPAIGN_ID_RE, Campaign
from orchestrator.store import db, failures, migrate, repo, segments
from orchestrator.store.db import Engine, Session

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
    # the send-time optimiser's priors by (campaign, sub-campaign): (computed at, by hour)
    send_time_priors: dict[tuple[str, str], tuple[datetime, list[float]]] = field(
        default_factory=dict
    )
    # bandit splits' tallies by (campaign, goal): (as of, repo.split_counts), reused by
    # the batches of one tick (the same `now`)
    split_tallies: dict[tuple[str, str], tuple[datetime, Any]] = field(default_factory=dict)

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
    """The files of these campaigns (ids or paths), or of every campaign in CAMPAIGN_GRAPHS:
    none there is a ConfigurationError."""
    folder = ctx.config.graphs
    if not names:
        return loader.campaigns_in(folder)
    out = []
    for name in names:
        candidate = Path(name)
        if candidate.suffix in loader.YAML_SUFFIXES and candidate.exists():
            out.append(candidate)
        else:
            out.append(folder / f"{name}.yaml")
    return out


def campaign_file(ctx: Context, campaign_id: str) -> Path:
    """The file of campaign `campaign_id` in the campaigns folder: an id only (never a
    path that could lead out of the folder); UnknownCampaignError otherwise."""
    if not isinstance(campaign_id, str) or not CAMPAIGN_ID_RE.fullmatch(campaign_id):
        raise UnknownCampaignError(
            f"{str(campaign_id)[:80]!r}: not a campaign id (lowercase letters, digits and -)"
        )
    path = ctx.config.graphs / f"{campaign_id}.yaml"
    if not path.is_file():
        raise UnknownCampaignError(
            f"{campaign_id!r}: no such campaign (no file {display_name(path)})"
        )
    return path


SEGMENT_FILE_PROBLEM = (
    "a segments file (only segments: and include:), not a campaign: include it from a "
    "campaign, and keep it in a sub-folder (campaign_graphs/segments/)"
)


@dataclass
class CampaignLoad:
    path: Path
    loaded: LoadedCampaign | None
    version_id: int | None
    problem: str | None


def load_current(ctx: Context, path: Path) -> CampaignLoad:
    """Load a campaign file and register its content as a version (new content, new version)."""
    try:
        loaded = loader.load_unchanged(path)
    except UnreadableFileError as exc:
        return CampaignLoad(path, None, None, str(exc))
    if loaded.is_segment_file and not loaded.errors:
        return CampaignLoad(path, loaded, None, SEGMENT_FILE_PROBLEM)
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

# Where an opt-in or an opt-out came from: the `source` property of its `subscribed` or
# `unsubscribed` event. An opt-in is recorded once, where a subscriber becomes active (an id
# added, or back from `unsubscribed`, `unreachable` or `deleted`); an opt-out once, where an
# active one stops.
FROM_IMPORT = "import"  # `campaign subscribers import`: each subscriber it adds
FROM_API = "api"  # POST and DELETE /api/subscriptions (a browser or the site's backend)
FROM_PROFILE = "profile"  # the subscriber's own page: "Delete everything"
# a push service answered 404/410 for a subscriber's last subscription (`unreachable`)
FROM_PUSH_SERVICE = "push_service"
OPT_SOURCES = (FROM_IMPORT, FROM_API, FROM_PROFILE, FROM_PUSH_SERVICE)


@dataclass
class ImportReport:
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)


MAX_LINE_BYTES = 1_048_576


def read_jsonl(path: Path) -> Iterator[tuple[int, Any | RecordError]]:
    """(line number, parsed JSON or the RecordError saying why not) for each non-blank line.

    Lines are parsed strictly (`records.loads`); a line longer than MAX_LINE_BYTES is
    reported without being held in memory whole; bytes that are not UTF-8 make that
    line bad, not the file."""
    with path.open("rb") as lines:
        number = 0
        while True:
            line = lines.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            number += 1
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                while line and not line.endswith(b"\n"):  # skip the rest of the line
                    line = lines.readline(MAX_LINE_BYTES)
                yield number, RecordError(f"line longer than {MAX_LINE_BYTES:,} bytes")
                continue
            text = line.strip()
            if not text:
                continue
            try:
                yield number, loads(text, "line")
            except RecordError as exc:
                yield number, RecordError(str(exc).removeprefix("line: "))


def import_subscribers(
    ctx: Context,
    path: Path,
    *,
    batch_size: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Add or update subscribers from JSONL; bad lines are reported and skipped, good ones kept.

    Each subscriber added gets its opt-in (source `import`), in the same transaction as
    the subscriber; one already stored gets none, so a file imported again counts nobody
    twice, and an `unsubscribed`, `unreachable` or `deleted` subscriber stays so (only
    the subscriber brings themselves back, through the API).
    A batch the database refuses as a whole is stored again line by line, so the line
    at fault is reported (with the database's reason) and the others are kept."""
    report = ImportReport()
    batch: list[tuple[int, SubscriberRecord]] = []
    seen: dict[str, int] = {}
    allowed = ctx.config.push_allowed_origins

    def store(records: list[SubscriberRecord]) -> tuple[int, int]:
        with ctx.session() as s, s.begin():
            return repo.upsert_subscribers(s, records, opt_in=FROM_IMPORT)

    def count(records: int, added: int, changed: int) -> None:
        report.added += added
        report.changed += changed
        report.unchanged += records - added - changed

    def flush() -> None:
        if not batch:
            return
        try:
            count(len(batch), *store([r for _, r in batch]))
        except Exception as exc:
            if not failures.is_database_error(exc) or failures.is_unavailable(exc):
                raise
            for number, record in batch:
                try:
                    count(1, *store([record]))
                except Exception as one:
                    if not failures.is_database_error(one) or failures.is_unavailable(one):
                        raise
                    report.bad.append((number, f"the database refused it: {failures.reason(one)}"))
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
        batch.append((number, record))
        if len(batch) >= batch_size:
            flush()
    flush()
    return report


@dataclass(frozen=True)
class StoredEvents:
    ids: list[int]  # in the order given; a repeat has the id stored the first time
    repeated: int  # how many were repeats of an event already stored (same client id)


def add_event_batches(
    ctx: Context, batches: list[list[EventRecord]]
) -> list[StoredEvents | RecordError]:
    """Several requests' events in one transaction and one INSERT; a request naming an
    unknown (or deleted) subscriber is refused whole (its RecordError in its place) and
    the others are stored."""
    with ctx.session() as s, s.begin():
        found = repo.subscriber_status(s, (r.subscriber_id for b in batches for r in b))
        problems = [_unknown(batch, found) for batch in batches]
        accepted = [
            r for batch, p in zip(batches, problems, strict=True) if p is None for r in batch
        ]
        ids, repeated = repo.store_events(s, accepted)
        out: list[StoredEvents | RecordError] = []
        at = 0
        for batch, problem in zip(batches, problems, strict=True):
            if problem is not None:
                out.append(problem)
                continue
            end = at + len(batch)
            out.append(StoredEvents(ids[at:end], sum(repeated[at:end])))
            at = end
        return out


def add_events(ctx: Context, records: list[EventRecord]) -> list[int]:
    """Record events (all or nothing); their ids. See `record_events`."""
    return record_events(ctx, records).ids


def record_events(ctx: Context, records: list[EventRecord]) -> StoredEvents:
    """Record events (all or nothing); unknown or deleted subscribers are refused with their ids."""
    with ctx.session() as s, s.begin():
        problem = _unknown(records, repo.subscriber_status(s, (r.subscriber_id for r in records)))
        if problem is not None:
            raise problem
        ids, repeated = repo.store_events(s, records)
        return StoredEvents(ids, sum(repeated))


def _unknown(records: list[EventRecord], status: dict[str, str]) -> RecordError | None:
    wanted = {r.subscriber_id for r in records}
    for label, missing in (
        ("unknown subscriber", sorted(wanted - set(status))),
        ("deleted subscriber", sorted(s for s in wanted if status.get(s) == "deleted")),
    ):
        if missing:
            shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
            return RecordError(f"{label}{'s' * (len(missing) > 1)}: {shown}")
    return None


# ------------------------------------------------------------------ segments


def find_segments(
    ctx: Context, *, campaign: str | None, name: str | None = None
) -> tuple[str, Campaign]:
    """The campaign whose segments to use: the named one, or the only one defining `name`."""
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
    _, model = find_segments(ctx, campaign=campaign, name=name)
    with ctx.session() as s:
        return segments.export(s, name, segments=model.segments, now=now, fmt=fmt, out=out)  # type: ignore[arg-type]


def segment_overlap(
    ctx: Context, *, campaign: str, now: datetime
) -> tuple[list[str], dict[tuple[str, str], int]]:
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
    return parse_time(value, "--now")

"""What a simulation starts from: the campaign files (a folder's, in name order), loaded
and checked together; each campaign's conversion rates; the population (given or
synthetic), stored in the simulation's database, with each subscriber's response curve
by local hour (`orchestrator.sim.response`) kept aside for the conversion draw."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.app.service import SEGMENT_FILE_PROBLEM, read_jsonl
from orchestrator.errors import CampaignError, UnreadableFileError
from orchestrator.language import loader
from orchestrator.language.records import (
    RecordError,
    parse_population_events,
    parse_subscriber,
)
from orchestrator.language.spec import Campaign
from orchestrator.sim.population import synthesize, union
from orchestrator.sim.response import curve_of, with_active_hours
from orchestrator.store import repo

MAX_CAMPAIGNS = 50  # campaigns simulated together

Curves = dict[str, tuple[str, list[float]]]  # subscriber: (timezone, 24 multipliers)
LINE_KEY = "\x00line"  # a population file's line number, carried with its line


def campaign_files(paths: list[Path]) -> list[Path]:
    """The campaign files of `paths`, in the order given; a folder stands for the campaign
    files directly inside it (`*.yaml`, `*.yml`), sorted by name. A folder without any,
    no file at all, or more than MAX_CAMPAIGNS files is a CampaignError."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = loader.campaign_files([path])
            if not found:
                raise CampaignError(f"{path}: no campaign files (*.yaml) in it")
            files += found
        else:
            files.append(path)
    if not files:
        raise CampaignError("no campaign file given")
    if len(files) > MAX_CAMPAIGNS:
        raise CampaignError(
            f"{len(files)} campaign files: at most {MAX_CAMPAIGNS} are simulated together"
        )
    return files


def load_campaigns(files: list[Path]) -> list[Campaign]:
    """Every file loaded, or a CampaignError naming each file that cannot be read or does
    not validate (its first diagnostic, FILE:LINE:COL), or two files of one campaign id."""
    campaigns: list[Campaign] = []
    problems: list[str] = []
    for path in files:
        try:
            loaded = loader.load(path)
        except UnreadableFileError as exc:
            if len(files) == 1:
                raise
            problems.append(str(exc))
            continue
        if loaded.is_segment_file and not loaded.errors:
            if len(files) == 1:
                raise CampaignError(f"{path}: {SEGMENT_FILE_PROBLEM}")
            problems.append(f"{path}: {SEGMENT_FILE_PROBLEM}")
        elif not loaded.ok or loaded.campaign is None:
            if len(files) == 1:
                first = next((d.format() for d in loaded.errors), "does not validate")
                raise CampaignError(f"{path} does not validate: {first}")
            problems.append(next((d.format() for d in loaded.errors), f"{path}: does not validate"))
        else:
            campaigns.append(loaded.campaign)
    if problems:
        raise CampaignError(
            f"{len(problems)} of {len(files)} campaign files do not load; nothing ran:\n"
            + "\n".join(f"  {problem}" for problem in problems)
        )
    first_file: dict[str, Path] = {}
    for path, campaign in zip(files, campaigns, strict=True):
        name = campaign.campaign
        if name in first_file:
            if first_file[name].resolve() == path.resolve():
                raise CampaignError(f"{path} is given twice")
            raise CampaignError(
                f"{first_file[name]} and {path} are both campaign {name!r}: "
                "a programme runs each campaign once"
            )
        first_file[name] = path
    return campaigns


def rates_of(campaigns: list[Campaign], rates: dict[str, float]) -> list[dict[str, float]]:
    """Each campaign's conversion rates: `NODE` for that node of every campaign that has
    it, `CAMPAIGN.NODE` for one campaign's node (it wins over `NODE`)."""
    out: list[dict[str, float]] = [{} for _ in campaigns]
    index = {c.campaign: i for i, c in enumerate(campaigns)}
    unknown = []
    for key, rate in sorted(rates.items(), key=lambda item: "." in item[0]):
        name, dot, node = key.rpartition(".")
        if dot:
            i = index.get(name)
            if i is None or node not in campaigns[i].all_nodes():
                unknown.append(key)
            else:
                out[i][node] = rate
            continue
        found = [i for i, c in enumerate(campaigns) if key in c.all_nodes()]
        if not found:
            unknown.append(key)
        for i in found:
            out[i][key] = rate
    if unknown:
        names = ", ".join(sorted(unknown))
        if len(campaigns) == 1:
            raise CampaignError(f"--rate names no node of {campaigns[0].campaign}: {names}")
        raise CampaignError(f"--rate names no node of these campaigns: {names}")
    return out


def population_of(
    campaigns: list[Campaign],
    *,
    path: Path | None,
    count: int,
    seed: int,
    start: datetime,
    repeat_days: int = 0,
    active_hours: bool = False,
) -> list[dict[str, Any]]:
    """The given population, or the synthetic one of each campaign (`population.synthesize`),
    several joined by subscriber id (`population.union`); `active_hours`: synthetic
    subscribers get a few active hours each (`response.with_active_hours`)."""
    if path is None:
        made = [
            synthesize(c, count=count, seed=seed, start=start, repeat_days=repeat_days)
            for c in campaigns
        ]
        lines = made[0] if len(made) == 1 else union(made)
        if active_hours:
            with_active_hours(lines, seed=seed)
        return lines
    lines = []
    for number, raw in read_jsonl(path):
        if isinstance(raw, RecordError):
            raise CampaignError(f"{path}:{number}: {raw}")
        if isinstance(raw, dict):
            raw[LINE_KEY] = number  # what a later error names (blank lines are skipped)
        lines.append(raw)
    return lines


def store_population(ctx: Any, lines: list[dict[str, Any]]) -> tuple[int, Curves]:
    """Store the population's subscribers and events; returns how many, and the response
    curves of those who have one."""
    records, events = [], []
    curves: Curves = {}
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, dict):
            number = raw.pop(LINE_KEY, number)
        try:
            body = {k: v for k, v in raw.items() if k != "events"} if isinstance(raw, dict) else raw
            curve = curve_of(body) if isinstance(body, dict) else None
            record = parse_subscriber(body, allowed=())
            events += parse_population_events(record.id, raw.get("events", []))
        except (RecordError, KeyError, TypeError, AttributeError) as exc:
            raise CampaignError(f"population line {number}: {exc}") from None
        records.append(record)
        if curve is not None:
            curves[record.id] = (record.timezone, curve)
    with ctx.session() as s, s.begin():
        for i in range(0, len(records), 5000):
            repo.upsert_subscribers(s, records[i : i + 5000])
        repo.add_events(s, sorted(events, key=lambda e: e.at), ids_wanted=False)
    return len(records), curves

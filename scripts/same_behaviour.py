"""Checks that a refactor changed no behaviour: the same outputs, byte for byte, from two commits.

    .venv/bin/python scripts/same_behaviour.py [--base REF] [--subscribers N] [--keep DIR]

Runs, for the commit REF (default `main`, checked out in a temporary git worktree)
and for this working tree (committed or not), in fresh folders:

- `campaign simulate FILE --seed 1 --trace …` for every example campaign
  (the JSONL trace and the printed summary);
- `campaign demo`, then `campaign status CAMPAIGN --json` for every example.

Both sides run with this venv's Python, each importing its own checkout's
`orchestrator` and `flows` (PYTHONPATH), on the same day (the demo's clock starts
a fixed number of days before today); run times in printed summaries are masked.
Prints every file that differs with its first differing line and exits 1; exits 0
when all are identical.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the one part of an output that is the machine's, not the code's: how long it took
TIMING = re.compile(rb"in [0-9.]+s \([0-9.]+ steps/s\)")


def _campaign(checkout: Path, args: list[str], *, env: dict[str, str], out: Path) -> None:
    """`campaign ARGS` with `checkout`'s code; its stdout in `out`."""
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        cwd=checkout,
        env={**env, "PYTHONPATH": str(checkout)},
        capture_output=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise SystemExit(
            f"{checkout}: campaign {' '.join(args)} exited {done.returncode}\n"
            + done.stderr.decode(errors="replace")[-3000:]
        )
    out.write_bytes(TIMING.sub(b"in (time)", done.stdout))


def outputs(checkout: Path, folder: Path, *, subscribers: int) -> None:
    """Every compared output of `checkout`'s code, written under `folder`."""
    folder.mkdir(parents=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGN_", "PREFECT_"))}
    base["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    graphs = sorted((checkout / "campaign_graphs").glob("*.yaml"))
    for path in graphs:
        _campaign(
            checkout,
            ["simulate", str(path), "--seed", "1", "--trace", str(folder / f"{path.stem}.trace")],
            env=base,
            out=folder / f"{path.stem}.simulate.txt",
        )
    work = folder / "demo"
    _campaign(
        checkout,
        ["demo", "--subscribers", str(subscribers), "--workdir", str(work)],
        env=base,
        out=folder / "demo.txt",
    )
    (folder / "demo.txt").unlink()  # names its own folder; the status files carry its figures
    env = {
        **base,
        "CAMPAIGN_DB": f"sqlite:///{work / 'campaign.db'}",
        "CAMPAIGN_GRAPHS": str(checkout / "campaign_graphs"),
    }
    for path in graphs:
        _campaign(
            checkout,
            ["status", path.stem, "--json"],
            env=env,
            out=folder / f"{path.stem}.status.json",
        )
    shutil.rmtree(work)


def differences(before: Path, after: Path) -> list[str]:
    found: list[str] = []
    names = sorted({p.name for p in before.iterdir()} | {p.name for p in after.iterdir()})
    for name in names:
        a, b = before / name, after / name
        if not a.exists() or not b.exists():
            found.append(f"{name}: only in {'after' if b.exists() else 'before'}")
            continue
        old, new = a.read_bytes(), b.read_bytes()
        if old == new:
            continue
        for number, (x, y) in enumerate(zip(old.splitlines(), new.splitlines(), strict=False), 1):
            if x != y:
                found.append(f"{name}:{number}:\n  before {x[:300]!r}\n  after  {y[:300]!r}")
                break
        else:
            found.append(f"{name}: {len(old)} bytes before, {len(new)} after")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="the commit to compare with")
    parser.add_argument("--subscribers", type=int, default=60, help="per campaign in the demo")
    parser.add_argument("--keep", type=Path, help="keep both sides' outputs in this folder")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="same-behaviour-"))
    tree = scratch / "base"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(tree), args.base],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    try:
        outputs(tree, scratch / "before", subscribers=args.subscribers)
        outputs(ROOT, scratch / "after", subscribers=args.subscribers)
        found = differences(scratch / "before", scratch / "after")
        if args.keep:
            shutil.copytree(scratch / "before", args.keep / "before", dirs_exist_ok=True)
            shutil.copytree(scratch / "after", args.keep / "after", dirs_exist_ok=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    if found:
        print(f"{len(found)} outputs differ from {args.base}:")
        print("\n".join(found))
        raise SystemExit(1)
    print(f"same behaviour as {args.base}: every output identical")


if __name__ == "__main__":
    main()

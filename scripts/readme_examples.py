"""Regenerate the README's drawn examples (between the EXAMPLES markers) from campaign_graphs/.

.venv/bin/python scripts/readme_examples.py          # rewrite README.md
.venv/bin/python scripts/readme_examples.py --check  # exit 1 if README.md is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

from orchestrator.language import loader
from orchestrator.render import to_mermaid

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- EXAMPLES:BEGIN (scripts/readme_examples.py) -->", "<!-- EXAMPLES:END -->"


def section() -> str:
    parts = [BEGIN, ""]
    for path in sorted((ROOT / "campaign_graphs").glob("*.yaml")):
        loaded = loader.load(path)
        assert loaded.campaign is not None and loaded.ok, path
        c = loaded.campaign
        summary = " ".join((c.description or "").split())
        parts += [
            f"### {c.title} — `campaign_graphs/{path.name}`",
            "",
            summary,
            "",
            "```mermaid",
            to_mermaid(c).rstrip(),
            "```",
            "",
        ]
    parts.append(END)
    return "\n".join(parts)


def main() -> int:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    start, stop = text.index(BEGIN), text.index(END) + len(END)
    new = text[:start] + section() + text[stop:]
    if "--check" in sys.argv:
        if new != text:
            print("README.md examples are stale: run scripts/readme_examples.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

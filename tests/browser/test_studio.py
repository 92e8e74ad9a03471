"""The authoring studio in headless Chromium, driven by its `data-testid` names: open a
file, a misspelt key's diagnostic while typing and its fix, a new node on the chart,
chart and text linked both ways, saving exactly the editor's text, and a save refused
when the file changed on disk."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.testing.ports import free_port, wait_until_answering
from tests.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.helpers import ROOT

FILE = "cart-recovery.yaml"


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing (CI installs it: apt-get install -y chromium)")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    folder = tmp_path_factory.mktemp("studio") / "graphs"
    shutil.copytree(ROOT / "campaign_graphs", folder)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CAMPAIGN_DB": f"sqlite:///{folder.parent / 'none-yet.db'}"}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "campaign"), "studio", str(folder), "--port", str(port)],
        cwd=folder.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_answering(base + "/api/files")
        yield base, folder
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture(scope="module")
def page(studio: tuple[str, Path]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    base, _ = studio
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        tab = chromium.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        tab.goto(f"{base}/?file={FILE}")
        tab.wait_for_selector("body[data-ready=true]", timeout=15_000)
        tab.wait_for_selector('[data-testid="flowchart"] svg g.node', timeout=15_000)
        yield tab
        assert errors == [], errors
        chromium.close()


def _text(page: Any) -> str:
    return str(page.evaluate("window.campaignStudio.view.state.doc.toString()"))


def _select(page: Any, needle: str, *, occurrence: int = 0) -> None:
    """Select the `occurrence`-th `needle` in the editor, as a click and drag would."""
    page.evaluate(
        """([needle, occurrence]) => {
            const view = window.campaignStudio.view;
            const text = view.state.doc.toString();
            let at = -1;
            for (let i = 0; i <= occurrence; i += 1) at = text.indexOf(needle, at + 1);
            view.dispatch({ selection: { anchor: at, head: at + needle.length } });
            view.focus();
        }""",
        [needle, occurrence],
    )


def _cursor_line(page: Any) -> int:
    return int(
        page.evaluate(
            "(() => { const s = window.campaignStudio.view.state;"
            " return s.doc.lineAt(s.selection.main.head).number; })()"
        )
    )


def test_the_opened_file_is_in_the_editor_and_drawn(page: Any, studio: tuple[str, Path]) -> None:
    _, folder = studio
    assert _text(page) == (folder / FILE).read_text(encoding="utf-8")
    nodes = page.eval_on_selector_all(
        '[data-testid="flowchart"] g.node[data-node]', "gs => gs.map(g => g.dataset.node)"
    )
    assert {"cart_tier", "cart_nudge", "cart_discount", "vip_nudge"} <= set(nodes)
    assert page.locator('[data-testid="diagnostics"] li.error').count() == 0


def test_a_misspelt_key_gets_its_line_col_and_did_you_mean_then_goes_when_fixed(
    page: Any,
) -> None:
    _select(page, "followup_cap")
    page.keyboard.type("folowup_cap")
    line = _cursor_line(page)
    problem = page.locator('[data-testid="diagnostics"] li.error', has_text="folowup_cap")
    problem.wait_for(timeout=10_000)
    assert problem.inner_text().startswith(f"{line}:3: unknown key 'folowup_cap'")
    assert "did you mean 'followup_cap'?" in problem.inner_text()
    assert page.locator(".cm-lint-marker-error").count() >= 1  # in the gutter too
    assert "stale" in (page.get_attribute('[data-testid="flowchart"]', "class") or "")
    _select(page, "folowup_cap")
    page.keyboard.type("followup_cap")
    problem.wait_for(state="detached", timeout=10_000)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"flowchart\"]').classList.contains('stale')"
    )


def test_a_new_node_and_its_edge_appear_on_the_chart(page: Any) -> None:
    _select(page, "on_no_convert: end", occurrence=0)
    page.keyboard.type("on_no_convert: last_word")
    nodes_at = _text(page).index("      cart_nudge:")
    page.evaluate(
        """(at) => { const view = window.campaignStudio.view;
            view.dispatch({ selection: { anchor: at } }); view.focus(); }""",
        nodes_at,
    )
    page.keyboard.insert_text(
        "      last_word:\n"
        "        notification:\n"
        "          title: One last word\n"
        "          body: Your cart is still there.\n"
        "          url: https://shop.example.com/cart\n"
        "        on_convert: end\n"
        "        on_no_convert: end\n\n"
    )
    new_node = page.locator('[data-testid="flowchart"] g.node[data-node="last_word"]')
    new_node.wait_for(timeout=10_000)
    edge = page.locator('[data-testid="flowchart"] path.edge[data-target="last_word"]')
    assert edge.count() >= 1


def test_a_click_on_a_node_moves_the_cursor_to_it_and_the_cursor_selects_a_node(
    page: Any,
) -> None:
    page.locator('[data-testid="flowchart"] g.node[data-node="cart_discount"]').click()
    expected = _text(page).splitlines().index("      cart_discount:") + 1
    assert _cursor_line(page) == expected
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"selected-node\"]').textContent === 'cart_discount'"
    )
    selected = page.locator('[data-testid="flowchart"] g.node.selected')
    assert selected.get_attribute("data-node") == "cart_discount"


def test_the_preview_shows_the_notification_rendered_for_a_sample_subscriber(page: Any) -> None:
    page.locator('[data-testid="flowchart"] g.node[data-node="cart_nudge"]').click()
    title = page.locator('[data-testid="preview-card"] .title')
    title.wait_for(timeout=10_000)
    # the template reads the trigger event's product: the sample's cart item fills it in
    page.wait_for_function(
        "() => /^Still thinking about .+\\?$/.test("
        "document.querySelector('[data-testid=\"preview-card\"] .title').textContent)"
    )
    assert "{{" not in title.inner_text()
    size = page.locator('[data-testid="preview-card"] .size').inner_text()
    assert size.endswith("of 3,993 bytes")
    first = title.inner_text()
    page.select_option('[data-testid="preview-sample"]', "3")
    page.wait_for_function(
        "(first) => document.querySelector('[data-testid=\"preview-card\"] .title')"
        ".textContent !== first",
        arg=first,
    )


def test_simulate_puts_counts_on_the_chart(page: Any) -> None:
    page.fill('[data-testid="simulate-subscribers"]', "500")
    page.locator('[data-testid="simulate-run"]').click()
    summary = page.locator('[data-testid="simulate-summary"]')
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"simulate-summary\"]')"
        ".textContent.startsWith('500 subscribers')",
        timeout=30_000,
    )
    assert "sent" in summary.inner_text()
    page.wait_for_selector('[data-testid="flowchart"].overlay g.outcomes')
    assert page.locator('[data-testid="flowchart"] g.outcomes').count() >= 3


def test_save_writes_exactly_the_editor_text(page: Any, studio: tuple[str, Path]) -> None:
    _, folder = studio
    page.locator('[data-testid="save"]').click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"save\"]').textContent === 'Saved'"
    )
    assert (folder / FILE).read_bytes() == _text(page).encode("utf-8")
    assert not (folder.parent / "none-yet.db").exists()  # saving made no database


def test_a_save_after_the_file_changed_on_disk_is_refused_with_a_choice(
    page: Any, studio: tuple[str, Path]
) -> None:
    _, folder = studio
    theirs = _text(page).replace("Abandoned cart recovery", "Cart recovery (edited elsewhere)")
    (folder / FILE).write_text(theirs, encoding="utf-8")
    _select(page, "Abandoned cart recovery")
    page.keyboard.type("Abandoned cart recovery, mine")
    page.keyboard.press("Control+s")
    conflict = page.locator('[data-testid="conflict"]')
    conflict.wait_for(state="visible", timeout=10_000)
    assert "changed on disk" in conflict.inner_text()
    assert (folder / FILE).read_text(encoding="utf-8") == theirs  # nothing overwritten
    page.locator('[data-testid="diff"]').click()
    assert "edited elsewhere" in page.locator('[data-testid="conflict-diff"]').inner_text()
    page.locator('[data-testid="reload"]').click()
    assert _text(page) == theirs
    assert conflict.is_hidden()


def test_a_campaign_written_from_an_empty_file_validates_and_is_saved(
    page: Any, studio: tuple[str, Path]
) -> None:
    """New → the starter campaign; emptied, an example typed in from nothing, then saved:
    `campaign validate` accepts the file on disk."""
    _, folder = studio
    page.once("dialog", lambda dialog: dialog.accept("from-scratch.yaml"))
    page.locator('[data-testid="new"]').click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"file-name\"]').textContent"
        " === 'from-scratch.yaml'"
    )
    assert "campaign: from-scratch" in _text(page)
    page.wait_for_selector('[data-testid="flowchart"] g.node[data-node="hello"]')
    page.evaluate(
        """() => { const view = window.campaignStudio.view;
            view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: "" } });
            view.focus(); }"""
    )
    page.locator('[data-testid="diagnostics"] li.error').first.wait_for(timeout=10_000)
    example = (ROOT / "campaign_graphs" / "coffee-carafe-ab.yaml").read_text(encoding="utf-8")
    example = example.replace("campaign: coffee-carafe-ab", "campaign: from-scratch")
    for chunk in example.splitlines(keepends=True):
        page.keyboard.insert_text(chunk)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"status\"]').textContent.startsWith('valid')",
        timeout=15_000,
    )
    assert _text(page) == example
    page.keyboard.press("Control+s")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"save\"]').textContent === 'Saved'"
    )
    assert (folder / "from-scratch.yaml").read_text(encoding="utf-8") == example
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "campaign"),
            "validate",
            str(folder / "from-scratch.yaml"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_completion_offers_the_schema_keys_and_the_node_ids_of_the_file(
    page: Any,
) -> None:
    page.locator(f'[data-testid="files"] li[data-name="{FILE}"]').click()
    page.wait_for_function(
        f"() => document.querySelector('[data-testid=\"file-name\"]').textContent === '{FILE}'"
        " && document.querySelector('[data-testid=\"status\"]').textContent.startsWith('valid')"
    )
    page.evaluate(
        """() => { const v = window.campaignStudio.view; const t = v.state.doc.toString();
            const at = t.indexOf('spacing: 12h') + 'spacing: 12h'.length;
            v.dispatch({ selection: { anchor: at } }); v.focus(); }"""
    )
    page.keyboard.press("Enter")
    page.keyboard.type("follo")
    tooltip = page.locator(".cm-tooltip-autocomplete")
    tooltip.wait_for(timeout=5_000)
    assert "followup_cap" in tooltip.inner_text()  # a key of `settings`, from the schema
    page.keyboard.press("Escape")
    page.evaluate(
        """() => { const v = window.campaignStudio.view; const t = v.state.doc.toString();
            const at = t.indexOf('on_no_convert: cart_discount') + 'on_no_convert: '.length;
            v.dispatch({ selection: { anchor: at, head: at + 'cart_discount'.length } });
            v.focus(); }"""
    )
    page.keyboard.type("cart_")
    page.keyboard.press("Control+Space")  # asked for, as an author may
    tooltip.wait_for(timeout=5_000)
    offered = tooltip.inner_text().split()
    assert {"cart_discount", "cart_nudge", "cart_tier"} <= set(offered)  # node ids of the file
    page.keyboard.press("Escape")


def test_the_served_bundle_is_built_from_its_source(tmp_path: Path) -> None:
    """`orchestrator/web/static/studio.bundle.js` is what `npm run build:studio` makes of
    `orchestrator/web/editor/studio.js` and the locked npm packages (esbuild's output is
    the same bytes for the same input)."""
    esbuild = ROOT / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists():
        pytest.fail("node_modules is missing: `make node` installs the locked npm packages")
    out = tmp_path / "studio.bundle.js"
    package = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    command = package["scripts"]["build:studio"].split()
    command = [str(esbuild), *[a for a in command[1:] if not a.startswith("--outfile=")]]
    subprocess.run([*command, f"--outfile={out}"], cwd=ROOT, check=True, capture_output=True)
    served = ROOT / "orchestrator" / "web" / "static" / "studio.bundle.js"
    assert out.read_bytes() == served.read_bytes(), "run `npm run build:studio` and commit"

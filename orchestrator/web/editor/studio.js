// The authoring studio's page: a CodeMirror 6 editor over one campaign file, checked by
// the server's loader as it is typed, with the flowchart beside it. Bundled by
// `npm run build:studio` into ../static/studio.bundle.js (served by orchestrator/web/studio.py).
import { EditorView, basicSetup } from "codemirror";
import { EditorState, StateField } from "@codemirror/state";
import { hoverTooltip, keymap } from "@codemirror/view";
import { yaml, yamlLanguage } from "@codemirror/lang-yaml";
import { linter, lintGutter, forceLinting } from "@codemirror/lint";
import { completionStatus, currentCompletions, startCompletion } from "@codemirror/autocomplete";
import { yamlSchemaHover } from "codemirror-json-schema/yaml";
import { stateExtensions } from "codemirror-json-schema";

const CHECK_DELAY_MS = 250;

const BASE = document.body.dataset.base || ""; // where the studio is mounted
const READ_ONLY = document.body.dataset.readOnly === "true"; // `campaign serve`'s view

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);

const studio = {
  name: null, // the open file, relative to the folder
  version: "", // the version on disk the editor started from
  saved: "", // the text last saved or opened
  checked: null, // the last answer of /api/check
  lastGood: null, // the last valid answer (its drawing stays, marked stale)
  selected: null, // the node the cursor is in
  sample: 0, // the sample subscriber of the preview
  view: null,
  names: new Set(), // node ids and segment names, for completion
};

async function api(path, body) {
  const init = body === undefined
    ? { method: "GET" }
    : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(BASE + path, init);
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = { detail: `answer ${response.status}` };
  }
  return { status: response.status, data };
}

// ---------------------------------------------------------------- diagnostics

function offsetOf(doc, line, col) {
  const n = Math.min(Math.max(line, 1), doc.lines);
  const text = doc.line(n);
  return Math.min(text.from + Math.max(col - 1, 0), text.to);
}

async function serverLint(view) {
  const text = view.state.doc.toString();
  const { status, data } = await api("/api/check", { name: studio.name, text });
  if (view.state.doc.toString() !== text) return []; // typed meanwhile: the next check follows
  if (status !== 200) {
    showChecked({ ok: false, diagnostics: [problem(data.detail || `answer ${status}`)], nodes: {}, segments: [] });
    return [problem(data.detail || `answer ${status}`)].map((d) => toCm(view.state.doc, d));
  }
  showChecked(data);
  return data.diagnostics.filter((d) => d.here).map((d) => toCm(view.state.doc, d));
}

function problem(message) {
  return { line: 1, col: 1, severity: "error", message, here: true, text: `1:1: error: ${message}` };
}

function toCm(doc, d) {
  const from = offsetOf(doc, d.line, d.col);
  const line = doc.lineAt(from);
  let to = from;
  while (to < line.to && !/\s/.test(doc.sliceString(to, to + 1))) to += 1;
  return { from, to: Math.max(to, Math.min(from + 1, line.to)), severity: d.severity, message: d.message };
}

function showChecked(data) {
  studio.checked = data;
  const names = [...Object.keys(data.nodes || {}), ...(data.segments || [])];
  // a text that does not parse keeps the names of the file's last one that did
  if (names.length || data.ok || studio.namesFor !== studio.name) {
    studio.names = new Set(names);
    studio.namesFor = studio.name;
  }
  const list = $("diagnostics");
  list.replaceChildren();
  for (const d of data.diagnostics) {
    const item = document.createElement("li");
    item.className = d.severity;
    item.dataset.line = d.line;
    item.dataset.col = d.col;
    item.textContent = d.here ? `${d.line}:${d.col}: ${d.message}` : d.text;
    if (d.here) item.addEventListener("click", () => jumpTo(d.line, d.col));
    list.append(item);
  }
  if ((data.total || 0) > data.diagnostics.length) {
    list.append(el("li", "more", `… and ${data.total - data.diagnostics.length} more`));
  }
  const counts = data.diagnostics.reduce((acc, d) => ((acc[d.severity] = (acc[d.severity] || 0) + 1), acc), {});
  $("status").textContent = data.ok
    ? `valid${counts.warning ? `, ${counts.warning} warning(s)` : ""} · checked in ${Math.round((data.seconds || 0) * 1000)} ms`
    : `${counts.error || 0} error(s)${counts.warning ? `, ${counts.warning} warning(s)` : ""}`;
  if (data.ok && data.svg) studio.lastGood = data;
  drawChart(!data.ok);
  if (data.ok) schedulePreview();
}

// ---------------------------------------------------------------- the flowchart

function drawChart(stale, overlaySvg) {
  const box = $("flowchart");
  const good = studio.lastGood;
  box.classList.toggle("stale", Boolean(stale && good));
  if (!good) {
    box.innerHTML = '<p class="empty">The flowchart appears when the campaign is valid.</p>';
    return;
  }
  const svg = overlaySvg || good.svg;
  box.classList.toggle("overlay", Boolean(overlaySvg));
  if (box.dataset.svgFor !== svg) {
    box.innerHTML = svg; // our own renderer's SVG: every text in it is escaped
    box.dataset.svgFor = svg;
    for (const g of box.querySelectorAll("g.node[data-node]")) {
      g.addEventListener("click", () => {
        const at = (studio.checked && studio.checked.nodes[g.dataset.node]) || good.nodes[g.dataset.node];
        if (at) jumpTo(at.line, at.col);
      });
    }
  }
  highlight(studio.selected);
}

function highlight(nodeId) {
  for (const g of $("flowchart").querySelectorAll("g.node.selected")) g.classList.remove("selected");
  if (!nodeId) return;
  for (const g of $("flowchart").querySelectorAll("g.node[data-node]")) {
    if (g.dataset.node === nodeId) g.classList.add("selected");
  }
}

function nodeAtCursor(state) {
  const nodes = (studio.checked && studio.checked.nodes) || {};
  const here = state.doc.lineAt(state.selection.main.head).number;
  let best = null;
  for (const [id, at] of Object.entries(nodes)) {
    if (at.line <= here && (!best || at.line > nodes[best].line)) best = id;
  }
  if (!best) return null;
  // past the node's block (a line less indented than its key) the cursor is elsewhere
  const start = nodes[best];
  for (let n = start.line + 1; n <= here; n += 1) {
    const text = state.doc.line(n).text;
    if (text.trim() && !text.startsWith(" ".repeat(start.col))) return null;
  }
  return best;
}

function jumpTo(line, col) {
  const view = studio.view;
  const at = offsetOf(view.state.doc, line, col);
  view.dispatch({ selection: { anchor: at }, scrollIntoView: true });
  view.focus();
}

// ---------------------------------------------------------------- preview and simulate

let previewTimer = null;

function schedulePreview() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(showPreview, 150);
}

async function showPreview() {
  const node = studio.selected;
  const card = $("preview-card");
  const ok = studio.checked && studio.checked.ok;
  if (!node || !ok || !(studio.checked.notifications || []).includes(node)) return;
  const text = studio.view.state.doc.toString();
  const subscriber = $("test-send-subscriber").value.trim();
  const { status, data } = await api("/api/preview", {
    name: studio.name, text, node, sample: studio.sample || 0, ...(subscriber ? { subscriber } : {}),
  });
  if (studio.selected !== node) return;
  $("preview-node").textContent = node;
  if (status !== 200) {
    card.replaceChildren(el("p", "problem", data.detail));
    return;
  }
  const select = $("preview-sample");
  select.replaceChildren(...data.samples.map((id, i) => {
    const option = el("option", "", id);
    option.value = String(i);
    option.selected = i === (studio.sample || 0);
    return option;
  }));
  const f = data.fields;
  const parts = [];
  if (f.icon) parts.push(img("icon", f.icon));
  parts.push(el("div", "title", f.title || ""));
  parts.push(el("div", "body", f.body || ""));
  if (f.image) parts.push(img("image", f.image));
  if (data.actions.length) {
    const row = el("div", "actions", "");
    for (const a of data.actions) row.append(el("button", "", a.title));
    parts.push(row);
  }
  if (f.url) parts.push(el("div", "url", `opens ${f.url}`));
  const size = data.size === null ? "" : `${data.size.toLocaleString()} of ${data.limit.toLocaleString()} bytes`;
  parts.push(el("div", `size${data.size > data.limit ? " over" : ""}`, size));
  if (data.problem) parts.push(el("div", "problem", `${data.problem.reason}: ${data.problem.detail}`));
  const box = el("div", "card", "");
  box.append(...parts);
  card.replaceChildren(box);
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.textContent = text;
  return node;
}

function img(className, src) {
  const node = document.createElement("img");
  node.className = className;
  node.alt = "";
  node.src = src;
  return node;
}

async function testSend(event) {
  event.preventDefault();
  const result = $("test-send-result");
  const node = studio.selected;
  if (!node) {
    result.textContent = "put the cursor in a notification node first";
    return;
  }
  const subscriber = $("test-send-subscriber").value.trim();
  const text = studio.view.state.doc.toString();
  result.textContent = "sending…";
  const { status, data } = await api("/api/test-send", { name: studio.name, text, node, subscriber });
  result.textContent = status === 200
    ? `${data.outcome}${data.detail ? `: ${data.detail}` : ""} (${node} to ${data.subscriber})`
    : data.detail;
}

async function runSimulation() {
  const summary = $("simulate-summary");
  const subscribers = Number($("simulate-subscribers").value);
  summary.textContent = `simulating ${subscribers.toLocaleString()} subscribers…`;
  const text = studio.view.state.doc.toString();
  const { status, data } = await api("/api/simulate", { name: studio.name, text, subscribers });
  if (status !== 200) {
    summary.textContent = data.detail;
    return;
  }
  if (studio.view.state.doc.toString() !== text) {
    summary.textContent = "the text changed while it was simulated: simulate again";
    return;
  }
  const s = data.summary;
  const exits = Object.entries(s.exits).map(([k, n]) => `${k} ${n.toLocaleString()}`).join(", ");
  summary.textContent =
    `${s.subscribers.toLocaleString()} subscribers over ${s.virtual_days} virtual days: ` +
    `${s.steps.toLocaleString()} steps, ${s.sent.toLocaleString()} sent, ` +
    `${s.conversions.toLocaleString()} conversions; exits: ${exits || "none"} (${s.seconds} s)`;
  drawChart(false, data.svg);
}

// ---------------------------------------------------------------- files

async function openFile(name) {
  const { status, data } = await api(`/api/file?name=${encodeURIComponent(name)}`);
  if (status !== 200) {
    $("status").textContent = data.detail;
    return;
  }
  studio.name = data.name;
  studio.version = data.version;
  studio.saved = data.text;
  studio.lastGood = null;
  $("status").textContent = "checking…";
  $("file-name").textContent = data.name;
  for (const li of $("files").querySelectorAll("li")) li.classList.toggle("open", li.dataset.name === name);
  studio.view.dispatch({ changes: { from: 0, to: studio.view.state.doc.length, insert: data.text } });
  history.replaceState(null, "", `${location.pathname}?file=${encodeURIComponent(name)}`);
  forceLinting(studio.view);
  markDirty();
}

function markDirty() {
  const dirty = studio.view.state.doc.toString() !== studio.saved;
  $("save").classList.toggle("dirty", dirty);
  $("save").textContent = dirty ? "Save" : "Saved";
}

async function inFlightAllows(text) {
  // journeys in flight keep their version until `campaign migrate`; say what it would do
  const { status, data } = await api("/api/in-flight", { name: studio.name, text });
  if (status !== 200 || !data.database || !data.in_flight) return true;
  const ending = Object.entries(data.ending_at).map(([n, c]) => `${n} (${c})`).join(", ");
  return window.confirm(
    `${data.in_flight} journeys of ${data.campaign} are in flight on an earlier version. ` +
    `After saving, \`campaign migrate ${data.campaign}\` would move ${data.would_move} ` +
    `to the same node in this version` +
    (data.would_end ? ` and end ${data.would_end} whose node is gone: ${ending}` : "") +
    ". Save?",
  );
}

async function save() {
  const text = studio.view.state.doc.toString();
  if (!(await inFlightAllows(text))) return false;
  const { status, data } = await api("/api/save", { name: studio.name, text, version: studio.version });
  const conflict = $("conflict");
  if (status === 409) {
    conflict.hidden = false;
    $("conflict-detail").textContent = data.detail;
    conflict.dataset.current = data.current === null ? "" : data.current;
    conflict.dataset.version = data.version || "";
    return false;
  }
  if (status !== 200) {
    $("status").textContent = `not saved: ${data.detail}`;
    return false;
  }
  conflict.hidden = true;
  studio.version = data.version;
  studio.saved = text;
  markDirty();
  $("status").textContent = `saved ${studio.name}`;
  return true;
}

function reloadFromDisk() {
  const conflict = $("conflict");
  studio.version = conflict.dataset.version;
  studio.saved = conflict.dataset.current;
  studio.view.dispatch({ changes: { from: 0, to: studio.view.state.doc.length, insert: studio.saved } });
  conflict.hidden = true;
  markDirty();
}

function overwrite() {
  studio.version = $("conflict").dataset.version; // the author has seen the other text
  $("conflict").hidden = true;
  save();
}

function showDiff() {
  const mine = studio.view.state.doc.toString().split("\n");
  const theirs = ($("conflict").dataset.current || "").split("\n");
  const out = [];
  const max = Math.max(mine.length, theirs.length);
  for (let i = 0; i < max; i += 1) {
    if (mine[i] === theirs[i]) continue;
    if (theirs[i] !== undefined) out.push(`${i + 1} on disk: ${theirs[i]}`);
    if (mine[i] !== undefined) out.push(`${i + 1} yours:   ${mine[i]}`);
  }
  $("conflict-diff").textContent = out.slice(0, 400).join("\n") || "(the same text)";
  $("conflict-diff").hidden = false;
}

async function newFile() {
  const name = window.prompt("New campaign file (in the folder, ending .yaml):", "my-campaign.yaml");
  if (!name) return;
  const { status, data } = await api("/api/new", { name });
  if (status !== 200) {
    $("status").textContent = data.detail;
    return;
  }
  await listFiles();
  await openFile(data.name);
}

async function listFiles() {
  const { data } = await api("/api/files");
  const list = $("files");
  list.replaceChildren();
  for (const name of data.files || []) {
    const li = document.createElement("li");
    li.dataset.name = name;
    li.textContent = name;
    li.addEventListener("click", () => openFile(name));
    list.append(li);
  }
  return data.files || [];
}

// ---------------------------------------------------------------- completion of keys

// The keys the campaign JSON Schema allows where the cursor is: the path of parent keys
// comes from indentation (each line with less indent above the cursor is a parent), the
// schema is walked along it ($ref, anyOf/oneOf, if/then/else, patternProperties, items).
function resolveRef(schema, root) {
  let s = schema;
  for (let guard = 0; s && s.$ref && guard < 20; guard += 1) {
    s = s.$ref.replace(/^#\//, "").split("/").reduce((o, k) => (o ? o[k] : undefined), root);
  }
  return s || {};
}

function variants(schema, root, depth = 0) {
  const s = resolveRef(schema, root);
  if (depth > 8) return [s];
  const alternatives = [...(s.anyOf || []), ...(s.oneOf || []), ...(s.allOf || [])];
  if (s.then) alternatives.push(s.then);
  if (s.else) alternatives.push(s.else);
  if (!alternatives.length) return [s];
  return [s, ...alternatives.flatMap((a) => variants(a, root, depth + 1))];
}

function child(schemas, key, root) {
  const out = [];
  for (const s of schemas) {
    if (key === "-") {
      if (s.items) out.push(...variants(s.items, root));
      continue;
    }
    if (s.properties && s.properties[key]) out.push(...variants(s.properties[key], root));
    else if (s.patternProperties) {
      for (const [pattern, sub] of Object.entries(s.patternProperties)) {
        if (new RegExp(pattern).test(key)) out.push(...variants(sub, root));
      }
    } else if (s.additionalProperties && typeof s.additionalProperties === "object") {
      out.push(...variants(s.additionalProperties, root));
    }
  }
  return out;
}

function pathAt(state, pos) {
  const line = state.doc.lineAt(pos);
  const here = line.text.slice(0, pos - line.from);
  const item = /^(\s*)- /.exec(here);
  let indent = item ? item[1].length + 2 : /^\s*/.exec(here)[0].length;
  const path = item ? ["-"] : [];
  for (let n = line.number - 1; n >= 1 && indent > 0; n -= 1) {
    const text = state.doc.line(n).text;
    if (!text.trim() || /^\s*#/.test(text)) continue;
    const m = /^(\s*)(- )?([A-Za-z0-9_.-]+)\s*:/.exec(text);
    const lead = /^\s*/.exec(text)[0].length;
    if (lead >= indent) continue;
    if (m) {
      path.unshift(m[3]);
      if (m[2]) path.unshift("-");
    } else if (/^\s*- /.test(text)) {
      path.unshift("-");
    }
    indent = lead;
  }
  return path;
}

function keysCompletion(context) {
  const schema = studio.schema;
  const line = context.state.doc.lineAt(context.pos);
  const before = line.text.slice(0, context.pos - line.from);
  if (!schema || !/^\s*(- )?[A-Za-z0-9_]*$/.test(before)) return null;
  const word = context.matchBefore(/[A-Za-z0-9_]*/);
  if (!word || (word.from === word.to && !context.explicit)) return null;
  let schemas = variants(schema, schema);
  for (const key of pathAt(context.state, context.pos)) schemas = child(schemas, key, schema);
  const options = new Map();
  for (const s of schemas) {
    for (const [key, sub] of Object.entries(s.properties || {})) {
      if (!options.has(key)) {
        const about = resolveRef(sub, schema);
        options.set(key, { label: key, type: "property", apply: `${key}: `, info: about.description || sub.description || undefined });
      }
    }
  }
  if (!options.size) return null;
  return { from: word.from, options: [...options.values()], validFor: /^[A-Za-z0-9_]*$/ };
}

// ---------------------------------------------------------------- completion of names

function namesCompletion(context) {
  const word = context.matchBefore(/[A-Za-z0-9_-]*/);
  if (!word || (word.from === word.to && !context.explicit)) return null;
  const line = context.state.doc.lineAt(context.pos).text;
  if (!/(to|start|on_convert|on_no_convert|segment|else|- )\s*:?\s*[A-Za-z0-9_-]*$/.test(line.slice(0, context.pos - context.state.doc.lineAt(context.pos).from))) {
    return null;
  }
  return {
    from: word.from,
    options: [...studio.names].map((label) => ({ label, type: "variable" })),
  };
}

// ---------------------------------------------------------------- start

async function start() {
  const schema = (await api("/api/schema")).data;
  studio.schema = schema;
  const selection = StateField.define({
    create: () => null,
    update(value, tr) {
      if (!tr.selection && !tr.docChanged) return value;
      const id = nodeAtCursor(tr.state);
      if (id !== studio.selected) {
        studio.selected = id;
        highlight(id);
        $("selected-node").textContent = id || "";
        studio.sample = 0;
        schedulePreview();
      }
      return id;
    },
  });
  studio.view = new EditorView({
    parent: $("editor"),
    state: EditorState.create({
      doc: "",
      extensions: [
        basicSetup,
        EditorState.readOnly.of(READ_ONLY),
        yaml(),
        stateExtensions(schema),
        yamlLanguage.data.of({ autocomplete: keysCompletion }),
        yamlLanguage.data.of({ autocomplete: namesCompletion }),
        hoverTooltip(yamlSchemaHover()),
        lintGutter(),
        linter(serverLint, { delay: CHECK_DELAY_MS }),
        selection,
        keymap.of([{ key: "Mod-s", preventDefault: true, run: () => (save(), true) }]),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) markDirty();
        }),
      ],
    }),
  });
  $("save").addEventListener("click", save);
  $("simulate-run").addEventListener("click", runSimulation);
  $("new").addEventListener("click", newFile);
  $("test-send").addEventListener("submit", testSend);
  $("test-send-subscriber").addEventListener("change", schedulePreview);
  $("preview-sample").addEventListener("change", (event) => {
    studio.sample = Number(event.target.value);
    showPreview();
  });
  $("reload").addEventListener("click", reloadFromDisk);
  $("overwrite").addEventListener("click", overwrite);
  $("diff").addEventListener("click", showDiff);
  if (READ_ONLY) $("status").title = "read-only: edit with `campaign studio`";
  window.addEventListener("beforeunload", (event) => {
    if (studio.view.state.doc.toString() !== studio.saved) event.preventDefault();
  });
  const files = await listFiles();
  const wanted = new URLSearchParams(location.search).get("file");
  if (wanted || files.length) await openFile(wanted || files[0]);
  document.body.dataset.ready = "true";
}

studio.completion = { completionStatus, currentCompletions, startCompletion };
window.campaignStudio = studio; // for the console and the browser tests
start();

// The dashboard's scripts (agents/web/static) under Node, with stand-ins for the few browser objects they
// touch: a text-only DOM holding the ids of the page's HTML, an EventSource the scenario drives, fetch
// answered by the scenario, and timers on a clock the scenario moves (the browser's Date.now with it).
// Loaded by the scenarios tests/unit/web/page_scripts.py runs.
"use strict";
const vm = require("vm"), fs = require("fs"), path = require("path");

const STATIC = path.join(__dirname, "..", "..", "..", "agents", "web", "static");

class Node {
  constructor(tag, attrs = {}) {
    this.tag = tag; this.attrs = { ...attrs }; this.children = []; this.own = ""; this.className = "";
    this.value = ""; this.checked = false; this.hidden = false; this.disabled = false; this.dataset = {};
    this.listeners = {}; this.clientWidth = 600;
  }
  get id() { return this.attrs.id; }
  get childNodes() { return this.children; }
  get options() { return this.children.filter(c => c.tag === "option"); }
  get selected() { return "selected" in this.attrs; }
  set textContent(v) { this.own = String(v); this.children = []; }
  get textContent() { return this.own + this.children.map(c => typeof c === "string" ? c : c.textContent).join(""); }
  setAttribute(k, v) { this.attrs[k] = v; }
  append(...nodes) { this.children.push(...nodes); }
  replaceChildren(...nodes) { this.own = ""; this.children = nodes; }
  addEventListener(type, f) { this.listeners[type] = f; }
  closest() { return this; }
  // the first node (this one or below) whose class list has `cls`, or whose id is `id`
  find(cls) { return this.search(n => (n.className || "").split(" ").includes(cls)); }
  byId(id) { return this.search(n => n.id === id); }
  search(match) {
    if (match(this)) return this;
    for (const c of this.children) { const hit = typeof c === "string" ? null : c.search(match); if (hit) return hit; }
    return null;
  }
}

// The elements with an id in a page's HTML (tag, id, whether it starts hidden)
function skeleton(html) {
  const found = new Map();
  for (const m of html.matchAll(/<(\w+)([^>]*?)\sid="([^"]+)"([^>]*)>/g)) {
    const node = new Node(m[1], { id: m[3] });
    node.hidden = /\shidden(\s|$)/.test(`${m[2]} ${m[4]}`);
    found.set(m[3], node);
  }
  return found;
}

// One page: `html` (its file, for its elements; none for common.js alone) and its `scripts`, in order
function load({ html = null, scripts, pathname = "/", search = "", answer = () => null, clockMs = 0, storage = [] }) {
  const clock = { ms: clockMs };
  class BrowserDate extends Date {}
  BrowserDate.now = () => clock.ms;
  const timers = [], seen = { frames: 0, intervals: [], fetched: [], urls: [] };
  let nextTimer = 1;
  const later = (f, ms, every) => { timers.push({ id: nextTimer, at: clock.ms + (ms || 0), f, every }); return nextTimer++; };
  const elements = html ? skeleton(fs.readFileSync(path.join(STATIC, html), "utf8")) : new Map();
  const docListeners = {};
  const document = {
    createElement: tag => new Node(tag),
    createElementNS: (ns, tag) => new Node(tag),
    getElementById: id => {
      if (elements.has(id)) return elements.get(id);
      for (const e of elements.values()) { const hit = e.byId(id); if (hit) return hit; }
      return null;
    },
    addEventListener: (type, f) => { docListeners[type] = f; },
    title: "",
  };
  const sources = [];
  class EventSource {
    constructor(url) { this.url = url; this.readyState = 0; this.listeners = {}; sources.push(this); }
    addEventListener(type, f) { (this.listeners[type] ??= []).push(f); }
    close() { this.readyState = 2; }
    // an event from the server (`data` as JSON), or the browser's "open" / "error"
    fire(type, data) {
      if (type === "open") this.readyState = 1;
      for (const f of this.listeners[type] || []) f(data === undefined ? {} : { data: JSON.stringify(data) });
    }
  }
  EventSource.CLOSED = 2;
  const location = { pathname, search, href: pathname + search };
  const kept = new Map(storage);  // sessionStorage
  const context = {
    document, location, window: { addEventListener() {} }, EventSource, Date: BrowserDate,
    history: { replaceState: (s, t, url) => seen.urls.push(String(url)) },
    sessionStorage: { getItem: k => kept.get(k) ?? null, setItem: (k, v) => kept.set(k, String(v)),
                      removeItem: k => kept.delete(k) },
    // morphdom, as the pages call it (childrenOnly): the children become the new ones
    morphdom: (target, next) => target.replaceChildren(...next.children),
    requestAnimationFrame: f => { seen.frames++; return later(f, 0); },
    setTimeout: (f, ms) => later(f, ms), clearTimeout: id => { const i = timers.findIndex(t => t.id === id); if (i >= 0) timers.splice(i, 1); },
    setInterval: (f, ms) => { seen.intervals.push(ms); return later(f, ms, ms); },
    fetch: async (url, init = {}) => {
      seen.fetched.push(String(url));
      const a = answer(String(url), init);
      if (a === "offline") throw new TypeError("Failed to fetch");
      if (a === "hang") return new Promise(() => {});  // no answer ever (a dead keep-alive connection)
      const { status = 200, body = {} } = a || {};
      return { status, ok: status >= 200 && status < 300, json: async () => body };
    },
    URLSearchParams, AbortController, console, encodeURIComponent, decodeURIComponent,
  };
  vm.createContext(context);
  for (const script of scripts) vm.runInContext(fs.readFileSync(path.join(STATIC, script), "utf8"), context, { filename: script });

  // let promises and due timers run (fetch answers, frames)
  async function settle() {
    for (let round = 0; round < 20; round++) {
      await new Promise(resolve => setImmediate(resolve));
      const due = timers.filter(t => t.at <= clock.ms).sort((a, b) => a.at - b.at)[0];
      if (due) run(due);
    }
  }
  function run(timer) {
    if (timer.every) timer.at += timer.every; else timers.splice(timers.indexOf(timer), 1);
    timer.f();
  }
  // the clock moves on by `ms`, running each timer when its time comes
  async function advance(ms) {
    const end = clock.ms + ms;
    for (;;) {
      await settle();
      const due = timers.filter(t => t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      clock.ms = Math.max(clock.ms, due.at);
      run(due);
    }
    clock.ms = end;
    await settle();
  }
  return {
    document, location, sources, seen, clock, settle, advance, Node, storage: kept,
    el: id => document.getElementById(id),
    text: id => (document.getElementById(id) || { textContent: null }).textContent,
    eval: code => vm.runInContext(code, context),
    start: async () => { await docListeners.DOMContentLoaded(); await settle(); },
  };
}

// The JSON /api/state answers (routes/ward.py state) for a ward of `patients`
function wardState(patients = [], extra = {}) {
  return { csrf: "c", may_acknowledge: true, user: "ann", role: "clinician", zone: "UTC",
           server_now: "2026-01-01T09:00:00.000Z", patients, recent: [], ward_status: [], ...extra };
}

module.exports = { load, wardState, Node };

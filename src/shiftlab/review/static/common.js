"use strict";
// Shared by every view: the token header, DOM building as text nodes (data never parsed as HTML), the reviewer
// name, the position in the queue (kept across reloads), keyboard dispatch, help and preview overlays.
const SL = (() => {
  const meta = (n) => (document.querySelector(`meta[name="${n}"]`) || {}).content || "";
  const token = meta("sl-token");
  const fixedReviewer = meta("sl-reviewer");
  const task = document.body.dataset.task || "";
  const statusEl = document.getElementById("status");
  const keys = {};

  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k === "dataset") Object.assign(e.dataset, v);
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of kids.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // replaceChildren stringifies null ("null" on the page): every view fills nodes through put, which skips
  // null/undefined/false the way el does
  function put(node, ...kids) {
    node.replaceChildren();
    for (const c of kids.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function status(msg, bad) {
    statusEl.textContent = msg;
    statusEl.classList.toggle("bad", !!bad);
  }

  async function api(method, url, body) {
    const r = await fetch(url, {
      method, credentials: "same-origin",
      headers: {"X-Shiftlab-Token": token, "Content-Type": "application/json"},
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!r.ok) {
      let msg = `${r.status} ${r.statusText}`;
      try { msg = (await r.json()).detail || msg; } catch (e) { /* not JSON */ }
      status(msg, true);
      throw new Error(msg);
    }
    return r.json();
  }

  function reviewer() { return fixedReviewer || localStorage.getItem("shiftlab:reviewer") || ""; }
  function showWho() { document.getElementById("who").textContent = reviewer(); }
  function askWho() {
    const dlg = document.getElementById("who-dialog");
    dlg.hidden = false;
    const input = document.getElementById("who-input");
    input.value = reviewer();
    input.focus();
  }
  document.getElementById("who-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = document.getElementById("who-input").value.trim();
    if (!name) return;
    localStorage.setItem("shiftlab:reviewer", name);
    document.getElementById("who-dialog").hidden = true;
    showWho();
    // this reviewer worked here before (maybe in another browser): reopen at their place
    const was = serverPos;
    serverPos = null;
    loadPos().then(() => {
      if (serverPos !== null && serverPos !== undefined && serverPos !== was) {
        history.replaceState(null, "", location.pathname + location.search);
        location.reload();
      }
    });
  });
  document.getElementById("who").addEventListener("click", () => { if (!fixedReviewer) askWho(); });

  function uuid() {
    return (crypto.randomUUID && crypto.randomUUID()) || `${Date.now()}-${Math.random().toString(16).slice(2)}`;
  }

  // Requests leave in key-press order (a fast reviewer's "1 then u" must undo that 1): one promise chain.
  let chain = Promise.resolve();
  function serial(fn) {
    const p = chain.then(fn);
    chain = p.catch(() => {});
    return p;
  }

  function decide(target, decision, extra) {
    if (!reviewer()) { askWho(); return Promise.reject(new Error("no reviewer")); }
    const body = Object.assign({target, decision, reviewer: reviewer(), key: uuid()}, extra || {});
    return serial(async () => {
      const ev = await api("POST", `/api/tasks/${encodeURIComponent(task)}/decisions`, body);
      status(`saved: ${decision}${ev.reason ? " · " + ev.reason : ""}`);
      return ev;
    });
  }

  function undo() {
    if (!reviewer()) { askWho(); return Promise.resolve(null); }
    const body = {reviewer: reviewer(), key: uuid()};
    return serial(async () => {
      const r = await api("POST", `/api/tasks/${encodeURIComponent(task)}/undo`, body);
      status(r.undone ? "undone" : "nothing to undo");
      return r;
    });
  }

  // a labelling task answers with this reviewer's own submissions only
  const state = () => api("GET", `/api/tasks/${encodeURIComponent(task)}/state?reviewer=${encodeURIComponent(reviewer())}`);

  // position: the URL hash wins (shareable), then this reviewer's last position in this task, kept by the
  // server (per reviewer, not per browser); views read it after items(), which waits for it
  let serverPos = null;
  async function loadPos() {
    if (!task || !reviewer()) return;
    try {
      serverPos = (await api("GET", `/api/tasks/${encodeURIComponent(task)}/position?reviewer=${encodeURIComponent(reviewer())}`)).position;
    } catch (e) { serverPos = null; }
  }
  const posReady = loadPos();
  const items = async () => (await Promise.all([api("GET", `/api/tasks/${encodeURIComponent(task)}/items`), posReady]))[0];
  function getPos(fallback) {
    const m = /pos=([^&]+)/.exec(location.hash);
    if (m) return decodeURIComponent(m[1]);
    return serverPos === null || serverPos === undefined ? fallback : serverPos;
  }
  let posChain = Promise.resolve();  // one at a time, in order: the last move is the one kept
  function setPos(v) {
    history.replaceState(null, "", `#pos=${encodeURIComponent(v)}`);
    if (String(v) === serverPos || !reviewer()) return;
    serverPos = String(v);
    const body = {reviewer: reviewer(), position: serverPos};
    posChain = posChain.then(() => api("PUT", `/api/tasks/${encodeURIComponent(task)}/position`, body)).catch(() => {});
  }

  function overlay(id, show) { document.getElementById(id).hidden = !show; }
  function preview(figs) {
    const body = document.getElementById("preview-body");
    put(body, figs.map(([src, cap]) => el("figure", {}, el("img", {src, alt: cap}), el("figcaption", {text: cap}))));
    overlay("preview", true);
  }
  document.getElementById("help-button").addEventListener("click", () => overlay("help", true));
  for (const id of ["help", "preview"]) {
    document.getElementById(id).addEventListener("click", () => overlay(id, false));
  }

  function on(keyList, fn) { for (const k of keyList) keys[k] = fn; }
  const MOVES = new Set(["j", "k", "ArrowDown", "ArrowUp", "ArrowLeft", "ArrowRight"]);
  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (!document.getElementById("who-dialog").hidden) return;  // the name form owns the keyboard
    if (ev.repeat && !MOVES.has(ev.key)) { ev.preventDefault(); return; }  // a held digit decides once
    const t = ev.target;
    const typing = t && (t.tagName === "TEXTAREA" || t.tagName === "SELECT" ||
      (t.tagName === "INPUT" && !["checkbox", "radio", "button", "submit"].includes(t.type)));
    if (typing) {
      if (ev.key === "Escape") t.blur();
      return;
    }
    if (ev.key === "Escape") {
      for (const id of ["help", "preview"]) overlay(id, false);
      if (keys.Escape) keys.Escape(ev);
      return;
    }
    if (ev.key === "?") { overlay("help", document.getElementById("help").hidden); ev.preventDefault(); return; }
    if (!document.getElementById("help").hidden) return;  // reading the help decides nothing
    const fn = keys[ev.key];
    if (fn) { ev.preventDefault(); if (!document.getElementById("preview").hidden && ev.key !== " ") overlay("preview", false); fn(ev); }
  });

  showWho();
  if (task && !reviewer()) askWho();
  const img = (dataset, id, size) => `/img/${encodeURIComponent(dataset)}/${encodeURIComponent(id)}` + (size ? `?size=${size}` : "");
  const fmt = (x, d) => (x === null || x === undefined ? "–" : Number(x).toFixed(d === undefined ? 2 : d));
  // thumbnail sizes come from the server (shiftlab.review.images.THUMB_SIZES), which pre-renders them
  const thumbs = {};
  for (const [k, v] of Object.entries(document.body.dataset)) {
    if (k.startsWith("thumb")) thumbs[k.slice(5).toLowerCase()] = Number(v);
  }
  return {thumbs, el, put, boundKeys: () => Object.keys(keys).sort(), api, status, decide, undo, state, items, getPos, setPos, on, preview, overlay, img, fmt, task, reviewer};
})();

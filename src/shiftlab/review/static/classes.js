"use strict";
// Class browser (ImageNetV2's review server): a class's name, gloss and reference images over a dense grid of
// its candidates with selection frequency and annotation count. 0 keeps, 1..n blacklists with that reason.
(async () => {
  const T = SL.thumbs;
  const {el, decide, undo, getPos, setPos, on, preview, img, fmt} = SL;
  const data = await SL.items();
  let st = await SL.state();
  const classes = data.classes;
  const reasons = data.reasons;
  const ui = {unrev: document.getElementById("f-unreviewed"), min: document.getElementById("f-min"),
              max: document.getElementById("f-max"), bin: document.getElementById("f-bin"), sort: document.getElementById("f-sort")};
  // the position is a class and an image id (an index would point elsewhere once filters or others'
  // decisions change the list)
  const saved = String(getPos("0:")).split(":");
  let ci = Math.min(Math.max(0, parseInt(saved[0], 10) || 0), Math.max(0, classes.length - 1));
  let pos = 0;
  let savedId = saved.slice(1).join(":") || null;
  let shown = [];
  const sel = new Set();  // a range of tiles (J/K or shift-click from the focus) that the next decision takes
  const thumbs = {};  // class index → {id: data URL}: one request per class instead of one per image
  async function loadThumbs(k) {
    if (thumbs[k] === undefined) {
      thumbs[k] = null;
      thumbs[k] = await SL.api("GET", `/api/tasks/${encodeURIComponent(SL.task)}/thumbs?label=${k}&size=${T.grid}`);
    }
    return thumbs[k];
  }
  const src = (im) => (thumbs[im.label] && thumbs[im.label][im.id]) || img(data.dataset, im.id, T.grid);

  SL.put(document.getElementById("legend"), el("span", {}, el("kbd", {text: "0"}), " keep "),
    ...reasons.map((r, i) => el("span", {}, el("kbd", {text: String(i + 1)}), ` ${r} `)),
    el("span", {}, el("kbd", {text: "["}), el("kbd", {text: "]"}), " class ", el("kbd", {text: "space"}), " enlarge ",
      el("kbd", {text: "u"}), " undo ", el("kbd", {text: "?"}), " help"));

  function visible() {
    const k = classes[ci] ? classes[ci].index : -1;
    const lo = parseFloat(ui.min.value) || 0, hi = ui.max.value === "" ? 1 : parseFloat(ui.max.value);
    const bin = ui.bin.value;
    let xs = data.images.filter((im) => im.label === k);
    if (ui.unrev.checked) xs = xs.filter((im) => !st[im.id]);
    xs = xs.filter((im) => im.frequency === null || (im.frequency >= lo && im.frequency <= hi));
    if (bin !== "") xs = xs.filter((im) => im.frequency !== null && Math.min(4, Math.floor(im.frequency * 5)) === +bin);
    const s = ui.sort.value;
    const f = (im) => (im.frequency === null ? -1 : im.frequency);
    if (s === "freq-desc") xs.sort((a, b) => f(b) - f(a) || (a.id < b.id ? -1 : 1));
    else if (s === "freq-asc") xs.sort((a, b) => f(a) - f(b) || (a.id < b.id ? -1 : 1));
    else xs.sort((a, b) => String(a.date).localeCompare(String(b.date)) || (a.id < b.id ? -1 : 1));
    return xs;
  }

  function renderList() {
    SL.put(document.getElementById("class-list"), classes.map((c, i) => {
      const done = data.images.filter((im) => im.label === c.index && st[im.id]).length;
      return el("button", {type: "button", class: i === ci ? "current" : "", onclick: () => pick(i)},
        el("span", {text: c.name}), el("span", {class: "muted", text: `${done}/${c.n}`}));
    }));
  }

  function render() {
    const c = classes[ci];
    shown = visible();
    if (savedId !== null) {
      const i = shown.findIndex((im) => im.id === savedId);
      if (i >= 0) pos = i;
      savedId = null;
    }
    pos = Math.min(Math.max(0, pos), Math.max(0, shown.length - 1));
    setPos(`${ci}:${shown[pos] ? shown[pos].id : ""}`);
    renderList();
    if (!c) return;
    SL.put(document.getElementById("class-head"),
      el("div", {}, el("h1", {text: c.name}), el("div", {class: "muted", text: [c.wnid, c.names.slice(1).join(", ")].filter(Boolean).join(" · ")}),
        el("div", {text: c.gloss || ""})),
      el("div", {class: "refs"}, c.references.map((id) => el("img", {class: "px", src: img(data.reference, id, T.reference), alt: `reference ${id}`, title: `reference ${id}`}))));
    const all = data.images.filter((im) => im.label === c.index);
    document.getElementById("progress").textContent =
      `${shown.length} shown · ${all.filter((im) => st[im.id]).length} of ${all.length} reviewed · ${all.filter((im) => st[im.id] && st[im.id].decision === "blacklist").length} blacklisted`;
    SL.put(document.getElementById("grid"), shown.map((im, i) => {
      const e = st[im.id];
      return el("div", {class: "tile" + (i === pos ? " focus" : "") + (sel.has(im.id) ? " ranged" : "") + (e && e.decision === "blacklist" ? " decided-bad" : ""),
                        dataset: {id: im.id}, title: im.id, onclick: (ev) => { if (ev.shiftKey) extendTo(i); else { sel.clear(); pos = i; } render(); }},
        e ? el("span", {class: `badge ${e.decision}`, text: e.decision === "blacklist" ? e.reason : "ok"}) : null,
        el("img", {class: "px", src: src(im), alt: im.id}),
        el("div", {class: "meta"}, el("span", {text: `f ${fmt(im.frequency)}`}), el("span", {text: im.n_annotations === null ? "" : `n ${im.n_annotations}`})));
    }));
    const f = document.querySelector(".grid .tile.focus");
    if (f) f.scrollIntoView({block: "nearest"});
  }
  async function pick(i) {
    sel.clear();
    ci = Math.min(Math.max(0, i), classes.length - 1);
    pos = 0;
    if (classes[ci]) await loadThumbs(classes[ci].index);
    render();
  }
  function cols() {
    const g = document.getElementById("grid");
    return Math.max(1, getComputedStyle(g).gridTemplateColumns.split(" ").length);
  }
  function extendTo(i) {
    const to = Math.min(Math.max(0, i), shown.length - 1);
    if (!shown[pos] || to < 0) return;
    if (!sel.size) sel.add(shown[pos].id);
    for (let k = Math.min(pos, to); k <= Math.max(pos, to); k++) sel.add(shown[k].id);
    pos = to;
  }
  async function markRange(decision, reason) {
    const ids = shown.filter((im) => sel.has(im.id)).map((im) => im.id);
    sel.clear();
    render();
    const saved = await Promise.all(ids.map((id) => decide(id, decision, reason ? {reason} : {})));
    ids.forEach((id, k) => { st[id] = saved[k]; });
    if (ui.unrev.checked) pos = Math.min(pos, visible().length - 1);
    render();
    SL.status(`${ids.length} images: ${reason || decision} (u undoes one at a time)`);
  }
  async function mark(decision, reason) {
    if (sel.size) return markRange(decision, reason);
    const im = shown[pos];
    if (!im) return;
    const saving = decide(im.id, decision, reason ? {reason} : {});
    pos += 1;  // move on at once; with "unreviewed only" the decided tile leaves once saved
    render();
    st[im.id] = await saving;
    if (ui.unrev.checked) pos -= 1;
    render();
  }
  for (const x of [ui.unrev, ui.min, ui.max, ui.bin, ui.sort]) x.addEventListener("change", () => { pos = 0; render(); if (x.tagName === "SELECT") x.blur(); });
  on(["0"], () => mark("ok"));
  reasons.forEach((r, i) => on([String(i + 1)], () => mark("blacklist", r)));
  on(["j", "ArrowRight"], () => { pos += 1; render(); });
  on(["k", "ArrowLeft"], () => { pos -= 1; render(); });
  on(["ArrowDown"], () => { pos += cols(); render(); });
  on(["ArrowUp"], () => { pos -= cols(); render(); });
  on(["J"], () => { extendTo(pos + 1); render(); });
  on(["K"], () => { extendTo(pos - 1); render(); });
  on(["Escape"], () => { sel.clear(); render(); });
  on(["]"], () => pick(ci + 1));
  on(["["], () => pick(ci - 1));
  on(["u"], async () => {  // back to the undone tile, in its class (filters allowing)
    const r = await undo();
    st = await SL.state();
    const im = r && r.target ? data.images.find((x) => x.id === r.target) : null;
    if (im) {
      const k = classes.findIndex((c) => c.index === im.label);
      if (k >= 0 && k !== ci) { ci = k; await loadThumbs(classes[ci].index); }
      savedId = im.id;
    }
    render();
  });
  on([" "], () => {
    const im = shown[pos];
    if (!im) return;
    if (!document.getElementById("preview").hidden) { SL.overlay("preview", false); return; }
    preview([[img(data.dataset, im.id), `${im.id} · frequency ${fmt(im.frequency)}`]]);
  });
  if (classes[ci]) await loadThumbs(classes[ci].index);
  render();
})();

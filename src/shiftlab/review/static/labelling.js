"use strict";
// The annotator's page of a HIT: "select every image that contains X" over its 48 images (opaque positions).
// 1/x toggles, 2 unselects, Enter submits in the shape `shiftlab hits import` reads; [ ] move between pages.
(async () => {
  const T = SL.thumbs;
  const {el, decide, undo, getPos, setPos, on, status, preview} = SL;
  const data = await SL.items();
  const hits = data.items;
  let st = await SL.state();
  const saved = String(getPos("0:0")).split(":");
  let hi = Math.min(Math.max(0, parseInt(saved[0], 10) || 0), Math.max(0, hits.length - 1));
  let pos = parseInt(saved[1], 10) || 0;
  let answers = [];

  function load() {
    const h = hits[hi];
    const e = st[h.target];
    answers = e && e.note ? JSON.parse(e.note).answers.slice() : new Array(h.n).fill(false);
  }
  function render() {
    const h = hits[hi];
    if (!h) { document.getElementById("instructions").textContent = "no HITs in this batch"; return; }
    pos = Math.min(Math.max(0, pos), h.n - 1);
    setPos(`${hi}:${pos}`);
    const done = hits.filter((x) => st[x.target]).length;
    SL.put(document.getElementById("instructions"), "Select every image that contains ", el("b", {text: h.class_name}),
      el("span", {class: "gloss", text: h.gloss || ""}));
    document.getElementById("progress").textContent =
      `page ${hi + 1} / ${hits.length} · ${answers.filter(Boolean).length} selected · ${st[h.target] ? "submitted" : "not submitted"} · ${done} pages submitted`;
    const src = (i) => `/hitimg/${encodeURIComponent(SL.task)}/${encodeURIComponent(h.target)}/${i}?size=${T.hit}`;
    SL.put(document.getElementById("grid"), Array.from({length: h.n}, (_, i) =>
      el("div", {class: "tile" + (answers[i] ? " selected" : "") + (i === pos ? " focus" : ""), dataset: {pos: String(i)},
                 onclick: () => { pos = i; answers[i] = !answers[i]; render(); }},
        el("img", {class: "px", src: src(i), alt: `image ${i + 1}`}))));
    const f = document.querySelector(".grid .tile.focus");
    if (f) f.scrollIntoView({block: "nearest"});
  }
  function cols() { return Math.max(1, getComputedStyle(document.getElementById("grid")).gridTemplateColumns.split(" ").length); }
  async function submit() {
    const h = hits[hi], page = hi, given = answers.slice(), n = given.filter(Boolean).length;
    const saving = decide(h.target, "submitted", {note: JSON.stringify({answers: given})});
    if (hi + 1 < hits.length) { hi += 1; pos = 0; load(); }
    render();
    try {
      st[h.target] = await saving;
    } catch (e) {
      // not saved: back to that page with its answers, so nothing the annotator did is lost
      hi = page; pos = 0; answers = given; render();
      status(`page ${page + 1} was not saved: ${e.message}`, true);
      return;
    }
    status(`submitted page ${page + 1}: ${n} of ${h.n} selected`);
    if (hi === page) load();
    render();
  }
  document.getElementById("submit").addEventListener("click", submit);
  on(["1", "x"], () => { answers[pos] = true; render(); });  // select (a click toggles)
  on(["2"], () => { answers[pos] = false; render(); });
  on(["Enter"], submit);
  on(["j", "ArrowRight"], () => { pos += 1; render(); });
  on(["k", "ArrowLeft"], () => { pos -= 1; render(); });
  on(["ArrowDown"], () => { pos += cols(); render(); });
  on(["ArrowUp"], () => { pos -= cols(); render(); });
  on(["]"], () => { hi = Math.min(hi + 1, hits.length - 1); pos = 0; load(); render(); });
  on(["["], () => { hi = Math.max(hi - 1, 0); pos = 0; load(); render(); });
  on(["u"], async () => {
    const r = await undo();
    st = await SL.state();
    if (r && r.target) { const i = hits.findIndex((x) => x.target === r.target); if (i >= 0) hi = i; }
    load(); render();
  });
  on([" "], () => {
    const h = hits[hi];
    if (!h) return;
    if (!document.getElementById("preview").hidden) { SL.overlay("preview", false); return; }
    preview([[`/hitimg/${encodeURIComponent(SL.task)}/${encodeURIComponent(h.target)}/${pos}`, `image ${pos + 1}`]]);
  });
  if (hits.length) load();
  render();
})();

"use strict";
// Near-duplicate queue: one pair at a time in focus; the query on the left, all its flagged neighbours on the
// right with their distance under every metric. 1 = duplicate, 2 = not a duplicate; focus then moves on.
(async () => {
  const T = SL.thumbs;
  const {el, decide, undo, getPos, setPos, on, preview, img, fmt, status} = SL;
  const data = await SL.items();
  const pairs = data.items;
  let st = await SL.state();
  let pos = Math.min(Math.max(0, parseInt(getPos(0), 10) || 0), Math.max(0, pairs.length - 1));
  const LABEL = {duplicate: "duplicate", distinct: "not duplicate"};

  function render() {
    const p = pairs[pos];
    const decided = pairs.filter((x) => st[x.target]).length;
    document.getElementById("progress").textContent =
      pairs.length ? `pair ${pos + 1} / ${pairs.length} · decided ${decided}` : "the queue is empty";
    if (!p) return;
    const q = document.getElementById("query");
    SL.put(q,
      el("img", {class: "px", src: img(p.query_dataset, p.query, T.query), alt: `query ${p.query}`}),
      el("figcaption", {}, el("b", {text: "query "}), `${p.query} · ${p.query_dataset}`));
    const group = pairs.map((x, i) => [x, i]).filter(([x]) => x.query === p.query);
    const metrics = [...new Set(group.flatMap(([x]) => Object.keys(x.distances)))].sort();
    const cards = group.map(([x, i]) => {
      const e = st[x.target];
      const rows = metrics.map((m) => el("tr", {}, el("td", {class: x.queued_by.includes(m) ? "q" : "", text: m}),
        el("td", {class: "num", text: x.distances[m] === undefined ? "–" : fmt(x.distances[m], x.distances[m] > 100 ? 0 : 3)}),
        el("td", {class: "num muted", text: x.ranks[m] === undefined ? "" : `#${x.ranks[m] + 1}`})));
      const card = el("figure", {class: "tile ncard" + (i === pos ? " focus" : "") + (e && e.decision === "duplicate" ? " decided-bad" : ""),
                                 dataset: {target: x.target, index: String(i)}, onclick: () => go(i)},
        e ? el("span", {class: `badge ${e.decision}`, text: LABEL[e.decision] || e.decision}) : null,
        el("img", {class: "px", src: img(x.reference_dataset, x.reference, T.neighbour), alt: `neighbour ${x.reference}`}),
        el("figcaption", {}, `${x.reference} · `, el("b", {text: x.reference_dataset})),
        el("table", {}, rows),
        el("div", {class: "actions"},
          el("button", {type: "button", onclick: (ev) => { ev.stopPropagation(); go(i); mark("duplicate"); }}, el("kbd", {text: "1"}), " duplicate"),
          el("button", {type: "button", onclick: (ev) => { ev.stopPropagation(); go(i); mark("distinct"); }}, el("kbd", {text: "2"}), " not")));
      return card;
    });
    SL.put(document.getElementById("neighbours"), cards);
    const f = document.querySelector(".ncard.focus");
    if (f) f.scrollIntoView({block: "nearest"});
  }
  function go(i) { pos = Math.min(Math.max(0, i), pairs.length - 1); setPos(pos); render(); }
  async function mark(decision) {
    const p = pairs[pos];
    if (!p) return;
    go(pos + 1 < pairs.length ? pos + 1 : pos);  // move on at once; the next key applies to the next pair
    st[p.target] = await decide(p.target, decision);
    render();
  }
  // bulk: every undecided pair of this query from the focus on is not a duplicate; focus moves to the next query
  async function restNotDuplicate() {
    const p = pairs[pos];
    if (!p) return;
    const rest = pairs.filter((x, i) => x.query === p.query && i >= pos && !st[x.target]);
    if (!rest.length) { status(`nothing undecided left for query ${p.query}`); return; }
    const next = pairs.findIndex((x, i) => i > pos && x.query !== p.query);
    go(next >= 0 ? next : pos);
    const saved = await Promise.all(rest.map((x) => decide(x.target, "distinct")));
    rest.forEach((x, k) => { st[x.target] = saved[k]; });
    render();
    status(`${rest.length} pair(s) of query ${p.query}: not duplicate (u undoes one at a time)`);
  }
  on(["n"], restNotDuplicate);
  on(["1"], () => mark("duplicate"));
  on(["2"], () => mark("distinct"));
  on(["j", "ArrowDown", "ArrowRight"], () => go(pos + 1));
  on(["k", "ArrowUp", "ArrowLeft"], () => go(pos - 1));
  on(["u"], async () => {
    const r = await undo();
    st = await SL.state();
    if (r && r.target) { const i = pairs.findIndex((x) => x.target === r.target); if (i >= 0) pos = i; setPos(pos); }
    render();
  });
  on([" "], () => {
    const p = pairs[pos];
    if (!p) return;
    if (!document.getElementById("preview").hidden) { SL.overlay("preview", false); return; }
    preview([[img(p.query_dataset, p.query), `query ${p.query}`], [img(p.reference_dataset, p.reference), `${p.reference_dataset} ${p.reference}`]]);
  });
  setPos(pos);
  render();
  status(`${pairs.length} pairs`);
})();

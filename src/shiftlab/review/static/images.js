"use strict";
// Generic per-image decisions: the configured decisions on digit keys (a second digit picks the reason when a
// decision has reasons) and an optional crop box dragged with the mouse, stored in original-image pixels.
(async () => {
  const T = SL.thumbs;
  const {el, decide, undo, getPos, setPos, on, img, status} = SL;
  const data = await SL.items();
  const cfg = data.config;
  const items = data.items;
  let st = await SL.state();
  let pos = Math.min(Math.max(0, parseInt(getPos(0), 10) || 0), Math.max(0, items.length - 1));
  let box = null;          // [x0, y0, x1, y1] in original pixels
  let pending = null;      // a decision waiting for its reason key
  const REASON_KEYS = "1234567890-=";  // decision_configs.REASON_KEYS: twelve reasons (S5's list) on one row
  const big = document.getElementById("big"), boxEl = document.getElementById("box"), stage = document.getElementById("stage");
  const cropping = cfg.decisions.some((d) => d.crop !== "no");  // otherwise the mouse draws nothing
  stage.classList.toggle("no-crop", !cropping);

  function scale() { return big.naturalWidth ? big.naturalWidth / big.clientWidth : 1; }
  function drawBox() {
    if (!box) { boxEl.hidden = true; return; }
    const s = scale();
    Object.assign(boxEl.style, {left: `${box[0] / s}px`, top: `${box[1] / s}px`, width: `${(box[2] - box[0]) / s}px`, height: `${(box[3] - box[1]) / s}px`});
    boxEl.hidden = false;
  }
  let drag = null;
  function at(ev) {
    const r = big.getBoundingClientRect(), s = scale();
    const cx = Math.min(Math.max(ev.clientX - r.left, 0), r.width), cy = Math.min(Math.max(ev.clientY - r.top, 0), r.height);
    return [cx * s, cy * s];
  }
  stage.addEventListener("mousedown", (ev) => {
    ev.preventDefault();
    if (!cropping || !big.complete || !big.naturalWidth) return;  // scale only once this image has loaded
    drag = at(ev); box = null; drawBox();
  });
  window.addEventListener("mousemove", (ev) => {
    if (!drag) return;
    const p = at(ev);
    box = [Math.min(drag[0], p[0]), Math.min(drag[1], p[1]), Math.max(drag[0], p[0]), Math.max(drag[1], p[1])];
    drawBox();
  });
  window.addEventListener("mouseup", () => {
    if (!drag) return;
    drag = null;
    if (box) {
      box = box.map(Math.round);
      if (box[2] - box[0] < 2 || box[3] - box[1] < 2) box = null;  // a click, not a box
    }
    drawBox(); renderSide();
  });
  big.addEventListener("load", drawBox);

  function renderSide() {
    const it = items[pos];
    const e = it ? st[it.id] : null;
    document.getElementById("caption").textContent = it ? [`${it.id}`, it.caption || ""].filter(Boolean).join("\n") : "";
    SL.put(document.getElementById("options"), cfg.decisions.map((d, i) =>
      el("li", {class: it && it.suggestion && it.suggestion.decision === d.name ? "suggested" : ""}, el("kbd", {text: String(i + 1)}), ` ${d.name}`,
        d.help ? el("span", {class: "muted", text: ` — ${d.help}`}) : null)));
    const rp = document.getElementById("reason-pick");
    rp.hidden = !pending;
    if (pending) SL.put(rp, el("b", {text: `${pending.name}: reason?`}), el("br"),
      ...pending.reasons.map((r, i) => el("span", {}, el("kbd", {text: REASON_KEYS[i]}), ` ${r}  `)), el("span", {class: "muted", text: "Esc cancels"}));
    const sg = it && it.suggestion;
    SL.put(document.getElementById("current"),
      sg ? el("div", {class: "suggestion"}, "suggested: ", el("b", {text: sg.decision}), sg.reason ? ` · ${sg.reason}` : "",
        el("span", {class: "muted"}, " — ", el("kbd", {text: "a"}), " accepts")) : null,
      cropping ? el("div", {text: box ? `crop box: ${box.join(", ")} px` : "no crop box (drag on the image)"}) : null,
      e ? el("div", {}, "decided: ", el("b", {text: e.decision}), e.reason ? ` · ${e.reason}` : "", e.crop ? ` · crop ${e.crop.join(",")}` : "", el("span", {class: "muted", text: ` by ${e.reviewer}`})) : el("div", {class: "muted", text: "undecided"}));
    const decided = items.filter((x) => st[x.id]).length;
    document.getElementById("progress").textContent = `${pos + 1} / ${items.length} · decided ${decided}`;
  }
  function render() {
    const it = items[pos];
    setPos(pos);
    if (it) { big.src = img(data.dataset, it.id); big.alt = it.id; }
    box = it && st[it.id] && st[it.id].crop ? st[it.id].crop.slice() : null;
    pending = null;
    drawBox();
    renderSide();
    paintStrip();
  }
  function paintStrip() {
    SL.put(document.getElementById("strip"), items.map((x, i) => {
      const e = st[x.id];
      const cls = e ? (e.decision === cfg.decisions[0].name ? "ok" : "other") : "";
      return el("div", {class: "tile" + (i === pos ? " focus" : ""), title: x.id, dataset: {id: x.id}, onclick: () => go(i)},
        e ? el("span", {class: `badge ${cls}`, text: e.decision}) : null,
        el("img", {class: "px", src: img(data.dataset, x.id, T.strip), alt: x.id, loading: "lazy"}));
    }));
    const f = document.querySelector(".strip .tile.focus");
    if (f) f.scrollIntoView({block: "nearest"});
  }
  function go(i) { pos = Math.min(Math.max(0, i), items.length - 1); render(); }
  async function commit(d, reason) {
    const it = items[pos];
    const crop = d.crop === "no" ? null : box;
    if (d.crop === "required" && !crop) { status(`${d.name} needs a crop box: drag on the image first`, true); return; }
    const saving = decide(it.id, d.name, {reason: reason || null, crop});
    go(pos + 1 < items.length ? pos + 1 : pos);
    st[it.id] = await saving;
    renderSide();
    paintStrip();
  }
  cfg.decisions.forEach((_, i) => on([String(i + 1)], () => {
    const k = i;
    if (pending) {
      const r = pending.reasons[k];
      if (!r) return;
      const d = pending; pending = null; commit(d, r);
      return;
    }
    const d = cfg.decisions[k];
    if (d.reasons.length) { pending = d; renderSide(); } else commit(d, null);
  }));
  // reasons may outnumber decisions: keep every reason key live while a reason is pending
  // (0, - and = only where a decision has more than nine reasons: other views keep the digits the README lists)
  const nReasonKeys = Math.min(REASON_KEYS.length, Math.max(9, ...cfg.decisions.map((d) => d.reasons.length)));
  for (let k = cfg.decisions.length; k < nReasonKeys; k++) on([REASON_KEYS[k]], () => {
    if (pending && pending.reasons[k]) { const d = pending; pending = null; commit(d, d.reasons[k]); }
  });
  // accept the suggestion (its decision and reason) as it stands
  on(["a"], () => {
    const it = items[pos];
    const sg = it && it.suggestion;
    if (!sg) { status("no suggestion for this image", true); return; }
    const d = cfg.decisions.find((x) => x.name === sg.decision);
    if (!d) return;
    if (d.reasons.length && !d.reasons.includes(sg.reason)) { pending = d; renderSide(); return; }  // ask for the reason
    pending = null;
    commit(d, d.reasons.length ? sg.reason : null);
  });
  on(["Escape"], () => { pending = null; renderSide(); });
  on(["c"], () => { box = null; drawBox(); renderSide(); });
  on(["j", "ArrowDown", "ArrowRight"], () => go(pos + 1));
  on(["k", "ArrowUp", "ArrowLeft"], () => go(pos - 1));
  on(["u"], async () => {
    const r = await undo();
    st = await SL.state();
    if (r && r.target) { const i = items.findIndex((x) => x.id === r.target); if (i >= 0) pos = i; }
    render();
  });
  render();
})();

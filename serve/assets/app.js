// The dashboard: rows from the page, then live from /status/stream.
// Everything a machine reported is put in with textContent, never as markup.
"use strict";
(function () {
  const rows = new Map();
  const order = { failed: 0, running: 1, "": 2, done: 3 };
  for (const r of JSON.parse(document.getElementById("initial-rows").textContent || "[]") || []) rows.set(r.id, r);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function size(n, unit) {
    if (unit !== "bytes") return n + (unit ? " " + unit : "");
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + u[i];
  }
  function duration(s) {
    s = Math.round(s);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
    return Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
  }
  function ago(t) {
    const s = (Date.now() - Date.parse(t)) / 1000;
    return s < 5 ? "just now" : duration(Math.max(s, 0)) + " ago";
  }
  function cell(tr, label, ...children) {
    const td = el("td");
    td.dataset.label = label;
    for (const c of children) if (c) td.append(c);
    tr.append(td);
    if (!td.textContent) td.classList.add("blank");
    return td;
  }
  function render(r) {
    const tr = el("tr", r.state || "idle");
    tr.dataset.id = r.id;
    const name = el("div", null, r.hostname || r.serial || r.mac || r.id);
    const ids = [r.serial && "serial " + r.serial, r.mac && "MAC " + r.mac, r.model].filter(Boolean).join(" · ");
    cell(tr, "Machine", name, el("div", "id", ids));
    cell(tr, "IP", el("span", null, r.ip || ""));
    cell(tr, "Sequence", el("span", null, r.sequence || ""), r.runs > 1 ? el("div", "muted", "run " + r.runs) : null);
    cell(tr, "Step", el("span", "step", r.step ? (r["step-index"] || "") + "/" + (r["step-count"] || "") + " " + r.step : ""));
    const prog = cell(tr, "Progress");
    prog.classList.add("progress");
    if (r.op) {
      prog.classList.remove("blank");
      const pct = r.total > 0 ? Math.min(100, Math.floor(r.done * 100 / r.total)) : null;
      const bar = el("div", "bar"), fill = el("div");
      fill.style.width = (pct === null ? 0 : pct) + "%";
      bar.append(fill);
      let text = r.op + " " + (pct === null ? size(r.done, r.unit) : pct + "% of " + size(r.total, r.unit));
      if (r.rate > 0) text += ", " + size(Math.round(r.rate), r.unit) + "/s";
      if (r.eta > 0) text += ", " + duration(r.eta) + " left";
      prog.append(bar, el("div", "muted", text));
    }
    cell(tr, "State", el("span", "state", r.state || "seen"), r.note ? el("div", "note", r.note) : null, el("div", "muted", ago(r["last-seen"])));
    cell(tr, "Last error", el("div", "err", r.error || ""));
    const log = cell(tr, "Log");
    if (r.log) {
      log.classList.remove("blank");
      const a = el("a", null, "log");
      a.href = r.log;
      log.append(a);
    }
    return tr;
  }
  function draw() {
    const list = [...rows.values()].sort((a, b) =>
      (order[a.state || ""] - order[b.state || ""]) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const body = document.querySelector("#machines tbody");
    body.replaceChildren(...list.map(render));
    document.getElementById("empty").hidden = list.length > 0;
    const n = s => list.filter(r => (r.state || "") === s).length;
    const sum = document.getElementById("summary");
    sum.replaceChildren(el("span", null, list.length + " machines"), el("span", null, n("running") + " running"),
      el("span", null, n("failed") + " failed"), el("span", null, n("done") + " done"));
  }
  let pending = false;
  function later() {
    if (!pending) { pending = true; setTimeout(() => { pending = false; draw(); }, 200); }
  }
  draw();
  setInterval(draw, 10000); // "last seen" moves on
  const conn = document.getElementById("conn");
  const es = new EventSource("/status/stream");
  es.addEventListener("open", () => { conn.textContent = "live"; });
  es.addEventListener("error", () => { conn.textContent = "reconnecting…"; });
  es.addEventListener("rows", e => { rows.clear(); for (const r of JSON.parse(e.data) || []) rows.set(r.id, r); draw(); });
  es.addEventListener("row", e => { const r = JSON.parse(e.data); rows.set(r.id, r); later(); });
})();

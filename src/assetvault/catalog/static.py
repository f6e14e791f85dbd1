"""The catalog's own stylesheet and search script, written beside its pages: nothing is loaded
from anywhere else (no CDN, no remote font), so the catalog works offline from the file system.

The script builds every result with ``textContent``, never ``innerHTML``: names from the
network stay text in the browser too.
"""

from __future__ import annotations

CSS = """
:root { --fg: #1d232a; --muted: #5c6773; --line: #d9dee3; --bg: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: var(--fg); background: var(--bg); }
header { background: #1f2d3d; padding: 10px 20px; }
header a.home { color: #fff; font-weight: 600; text-decoration: none; }
main { padding: 16px 20px; max-width: 1280px; margin: 0 auto; }
h1 { font-size: 22px; margin: 8px 0 12px; } h2 { font-size: 16px; margin: 0 0 4px; }
table { border-collapse: collapse; background: #fff; margin-bottom: 16px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 16px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; }
.card b { display: block; font-size: 20px; }
.badge { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 12px;
         font-weight: 600; color: #fff; background: #6b7785; vertical-align: middle; }
.st-complete.badge { background: #2e7d32; } .st-pending.badge { background: #b26a00; }
.st-failed.badge { background: #c62828; } .st-gone.badge { background: #6b7785; }
/* A name from upstream is its own bidi island: a right-to-left override inside it must not
   carry the state badge (or anything else) into the name's text. */
.name { unicode-bidi: isolate; }
.record { background: #fff; border: 1px solid var(--line); border-radius: 6px;
          padding: 12px 14px; margin: 12px 0; }
.record.st-failed { border-left: 4px solid #c62828; }
.record.st-pending { border-left: 4px solid #b26a00; }
.ids { color: var(--muted); margin: 0 0 8px; } .ids code { font-size: 12px; }
dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0 0 8px; }
dl.fields dt { color: var(--muted); } dl.fields dd { margin: 0; overflow-wrap: anywhere; }
.files { display: flex; flex-wrap: wrap; gap: 10px; }
figure.file { margin: 0; width: 220px; border: 1px solid var(--line); border-radius: 4px;
              background: #fafbfc; }
figure.file img.preview, .placeholder { display: block; width: 218px; height: 170px;
    object-fit: contain; background: #fff; image-rendering: pixelated; }
.placeholder { display: flex; align-items: center; justify-content: center; padding: 12px;
               color: var(--muted); font-size: 12px; text-align: center;
               background: repeating-linear-gradient(45deg, #f3f4f6, #f3f4f6 8px,
                                                     #eceef1 8px, #eceef1 16px); }
figcaption { padding: 6px 8px; font-size: 12px; overflow-wrap: anywhere; }
.meta { color: var(--muted); } .error { color: #c62828; }
.pager { margin: 8px 0; display: flex; gap: 12px; }
form.search { display: flex; gap: 8px; flex-wrap: wrap; margin: 0 0 8px; }
form.search input, form.search select { font: inherit; padding: 4px 8px; }
form.search input#q { width: 360px; }
ol#results { background: #fff; border: 1px solid var(--line); padding: 8px 8px 8px 36px; }
ol#results:empty { display: none; }
svg.chart { background: #fff; border: 1px solid var(--line); }
svg.chart rect { fill: #3b6ea5; } svg.chart text { font-size: 10px; fill: var(--muted); }
"""

JS = r"""
"use strict";
(function () {
  var meta = null, shards = [], next = 0, loading = false, query = null;
  var shown = 0, total = 0, timer = null, MAX = 200;
  window.AV = {
    meta: function (m) { meta = m; },
    shard: function (n, pages, rows) {
      shards[n] = {pages: pages, rows: rows}; scan(n); loadNext();
    }
  };
  function el(id) { return document.getElementById(id); }
  function loadNext() {
    if (!meta || next >= meta.shards) { loading = false; status(); return; }
    loading = true;
    var s = document.createElement("script");
    s.src = "search/s" + next + ".js";
    next++;
    s.onerror = loadNext;
    document.head.appendChild(s);
  }
  function matches(r, f, page) {
    if (f.state && r[4] !== f.state) return false;
    if (f.format && (" " + r[3] + " ").indexOf(" " + f.format + " ") < 0) return false;
    if (!f.q) return true;
    if (r[7] === undefined) {
      r[7] = [r[0], r[1], r[2], r[3], page[1]].join("\u0001").toLowerCase();
    }
    return r[7].indexOf(f.q) >= 0;
  }
  function item(r, page) {
    var li = document.createElement("li"), a = document.createElement("a");
    a.href = page[0] + "#" + r[6];
    a.textContent = r[0] || r[2];
    li.appendChild(a);
    var m = document.createElement("span");
    m.className = "meta";
    m.textContent = " " + [r[1], "id " + r[2], r[3], r[4], page[1]].filter(Boolean)
      .join(" \u00b7 ");
    li.appendChild(m);
    return li;
  }
  function scan(n) {
    var s = shards[n];
    if (!query || !s) return;
    var list = el("results");
    for (var i = 0; i < s.rows.length; i++) {
      if (!matches(s.rows[i], query, s.pages[s.rows[i][5]])) continue;
      total++;
      if (shown < MAX) { list.appendChild(item(s.rows[i], s.pages[s.rows[i][5]])); shown++; }
    }
    status();
  }
  function status() {
    var text = "";
    if (query) {
      text = total + " found" + (shown < total ? ", the first " + shown + " shown" : "");
      if (loading) text += " (searching\u2026)";
    }
    el("count").textContent = text;
  }
  function run() {
    query = {q: el("q").value.trim().toLowerCase(), state: el("state").value,
             format: el("format").value.trim().toLowerCase()};
    total = 0; shown = 0; el("results").textContent = "";
    if (!query.q && !query.state && !query.format) query = null;
    else {
      for (var n = 0; n < shards.length; n++) scan(n);
      if (next === 0) loadNext();
    }
    status();
    var h = query ? "#" + ["q", "state", "format"].map(function (k) {
      return k + "=" + encodeURIComponent(query[k]); }).join("&") : "#";
    if (history.replaceState) history.replaceState(null, "", h);
  }
  function later() { clearTimeout(timer); timer = setTimeout(run, 150); }
  document.addEventListener("DOMContentLoaded", function () {
    if (!el("q")) return;
    var list = el("formats");
    (meta && meta.formats || []).forEach(function (f) {
      var o = document.createElement("option"); o.value = f; list.appendChild(o);
    });
    var h = (location.hash || "").replace(/^#/, "");
    h.split("&").forEach(function (part) {
      var kv = part.split("="), k = kv[0], v = kv.slice(1).join("=") || "";
      // A hand-typed or cut link may hold a bare %: searched as typed, not an error that
      // would leave the page with no search at all.
      try { v = decodeURIComponent(v); } catch (e) { /* kept as typed */ }
      if (k === "q" || k === "state" || k === "format") el(k).value = v;
    });
    el("q").addEventListener("input", later);
    el("format").addEventListener("input", later);
    el("state").addEventListener("change", run);
    el("search").addEventListener("submit", function (e) { e.preventDefault(); run(); });
    if (h) run();
  });
})();
"""

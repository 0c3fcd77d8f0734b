/* Search as you type over the sharded index in search/ (see modelreg/site/search.py for its layout).
   The page itself lists the first models by name and links to the next pages, without JavaScript.
   A query, filter or sort fetches only the shards it needs (the browser caches them), ranks the
   matches (exact id, then name prefix, then whole-word matches, then the chosen sort) and shows the
   first PAGE, each row fetched from models/<id>/row.json. The state lives in the URL. */
(function () {
  "use strict";
  var list = document.getElementById("results");
  var form = document.getElementById("filters");
  if (!list || !form) return;
  var base = list.getAttribute("data-search").replace(/meta\.json$/, ""), root = list.getAttribute("data-root") || "";
  var countEl = document.getElementById("result-count");
  var empty = document.getElementById("no-results");
  var more = document.getElementById("show-more");
  var pagerEl = document.getElementById("pager");
  var note = document.querySelector(".page-note");
  var FIELDS = ["q", "license", "task", "format", "org", "min", "max", "sort", "live"];
  var GB = 1e9, PAGE = 50;
  var original = list.innerHTML, originalCount = countEl.textContent;
  var files = {}, meta = null, seq = 0, limit = PAGE, lastKey = "", matches = null;

  function field(name) { return form.elements[name]; }

  function get(path) {  // each file once per page; the browser's cache keeps them across visits
    if (!files[path]) {
      files[path] = fetch(base + path).then(function (r) {
        if (r.status === 404) return null;
        if (!r.ok) throw new Error(path + ": " + r.status);
        return r.json();
      });
    }
    return files[path];
  }

  function value(name) {
    var el = field(name);
    if (!el) return "";
    return el.type === "checkbox" ? (el.checked ? "1" : "") : el.value.trim();
  }

  function readURL() {
    var params = new URLSearchParams(window.location.search);
    FIELDS.forEach(function (name) {
      var el = field(name), v = params.get(name);
      if (!el) return;
      if (el.type === "checkbox") { el.checked = v === "1"; return; }
      if (v === null) v = "";
      if (el.tagName === "SELECT" && !Array.prototype.some.call(el.options, function (o) { return o.value === v; })) {
        var option = document.createElement("option");  // a value this page does not list still round-trips
        option.value = option.textContent = v;
        el.appendChild(option);
      }
      el.value = v;
    });
  }

  function state() {
    var s = {};
    FIELDS.forEach(function (name) { s[name] = value(name); });
    if (!s.sort) s.sort = "name";
    return s;
  }

  function writeURL(s) {
    var params = new URLSearchParams();
    FIELDS.forEach(function (name) {
      if (s[name] && !(name === "sort" && s[name] === "name")) params.set(name, s[name]);
    });
    var qs = params.toString();
    var url = window.location.pathname + (qs ? "?" + qs : "") + window.location.hash;
    if (url !== window.location.pathname + window.location.search + window.location.hash) {
      history.replaceState(null, "", url);
    }
  }

  function terms(q) { return q.toLowerCase().split(/[^a-z0-9]+/).filter(Boolean); }

  function decode(deltas, into) {  // delta-encoded sorted documents -> marks in a Uint8Array
    for (var i = 0, d = 0; i < deltas.length; i++) { d += deltas[i]; into[d] = 1; }
  }

  /* The documents holding a term that starts with t (all) and holding t itself (exact), as marks. */
  function termDocs(t) {
    var n = meta.count, all = new Uint8Array(n), exact = new Uint8Array(n);
    for (var i = 1; i <= t.length; i++) {
      var key = t.slice(0, i);
      if (meta.split.indexOf(key) >= 0) {
        if (i < t.length) continue;
        return get("t/" + key + ".json").then(function (shard) {
          if (shard) { decode(shard["*"], all); decode(shard["="], exact); }
          return { all: all, exact: exact };
        });
      }
      return get("t/" + key + ".json").then(function (shard) {
        for (var word in shard || {}) {
          if (word.lastIndexOf(t, 0) === 0) decode(shard[word], all);
        }
        if (shard && Object.prototype.hasOwnProperty.call(shard, t)) decode(shard[t], exact);
        return { all: all, exact: exact };
      });
    }
    return Promise.resolve({ all: all, exact: exact });
  }

  function nameKey(name) { return name.slice(0, 2).replace(/[^a-z0-9]/g, "_"); }

  /* Rank 0 for the exact id (or name), 1 for a name starting with the query, as {doc: rank}. */
  function nameRanks(q) {
    var slash = q.indexOf("/"), org = slash >= 0 ? q.slice(0, slash) : null, name = q.slice(slash + 1);
    if (name.length < 2) return Promise.resolve({});
    return get("n/" + nameKey(name) + ".json").then(function (entries) {
      var ranks = {};
      (entries || []).forEach(function (e) {
        var cut = e[0].indexOf("/"), o = e[0].slice(0, cut), nm = e[0].slice(cut + 1);
        if (org !== null && o !== org) return;
        if (nm === name) ranks[e[1]] = 0;
        else if (nm.lastIndexOf(name, 0) === 0) ranks[e[1]] = 1;
      });
      return ranks;
    });
  }

  var SORTS = { size: ["s", -1], "size-asc": ["s", 1], newest: ["d", -1], popular: ["n", -1], seeded: ["h", -1] };

  function isDefault(s) {
    return FIELDS.every(function (name) { return name === "sort" ? s.sort === "name" : !s[name]; });
  }

  /* Every matching document, ranked and sorted: a promise of an array of document numbers. */
  function search(s) {
    var ts = terms(s.q), q = s.q.trim().toLowerCase();
    var cols = [];
    if (s.license) cols.push("l");
    if (s.task) cols.push("p");
    if (s.format) cols.push("f");
    if (s.min || s.max) cols.push("s");
    if (s.live) cols.push("h", "w");
    var sort = SORTS[s.sort];
    if (sort && cols.indexOf(sort[0]) < 0) cols.push(sort[0]);
    var col = {};
    return Promise.all([
      Promise.all(ts.map(termDocs)),
      q ? nameRanks(q) : Promise.resolve({}),
      Promise.all(cols.map(function (c) { return get("c/" + c + ".json").then(function (v) { col[c] = v; }); }))
    ]).then(function (got) {
      var found = got[0], ranks = got[1], n = meta.count;
      var lo = 0, hi = n;
      if (s.org) {
        var span = meta.orgs.filter(function (o) { return o[0] === s.org; })[0];
        lo = span ? span[1] : 0; hi = span ? span[1] + span[2] : 0;
      }
      var lic = s.license ? meta.licenses.indexOf(s.license) : 0;
      var task = s.task ? meta.tasks.indexOf(s.task) : 0;
      var fi = s.format ? meta.formats.indexOf(s.format) : 0;
      var min = s.min ? parseFloat(s.min) * GB : -Infinity, max = s.max ? parseFloat(s.max) * GB : Infinity;
      if ((s.license && lic < 0) || (s.task && task < 0) || (s.format && fi < 0)) hi = lo;  // unknown: none
      var out = [], rank = new Int8Array(n);
      for (var d = lo; d < hi; d++) {
        var ok = true, whole = true;
        for (var t = 0; t < found.length; t++) {
          if (!found[t].all[d]) { ok = false; break; }
          if (!found[t].exact[d]) whole = false;
        }
        if (!ok) continue;
        if (s.license && col.l[d] !== lic) continue;
        if (s.task && col.p[d] !== task) continue;
        if (s.format && !(col.f[d] & (1 << fi))) continue;
        if ((s.min || s.max) && (col.s[d] < min || col.s[d] > max)) continue;
        if (s.live && !(col.h[d] > 0 || col.w[d] === 1)) continue;
        out.push(d);
        rank[d] = d in ranks ? ranks[d] : (found.length && whole ? 2 : 3);
      }
      var key = sort ? col[sort[0]] : null, dir = sort ? sort[1] : 1;
      out.sort(function (a, b) {
        return rank[a] - rank[b] || (key ? dir * (key[a] - key[b]) : 0) || a - b;
      });
      return out;
    });
  }

  /* The rows of documents, in order: ids from search/ids/, rows from models/<id>/row.json. */
  function rows(docs) {
    var chunk = meta.ids_chunk;
    return Promise.all(docs.map(function (d) {
      return get("ids/" + Math.floor(d / chunk) + ".json").then(function (ids) {
        var id = ids[d % chunk], path = root + "models/" + id + "/row.json";
        if (!files[path]) {
          files[path] = fetch(path).then(function (r) { return r.ok ? r.json() : { html: "" }; })
            .then(function (row) { return row.html; });
        }
        return files[path];
      });
    }));
  }

  function busy(on) { list.setAttribute("aria-busy", on ? "true" : "false"); }

  function show(html, n, total) {
    list.innerHTML = html;
    countEl.textContent = String(n);
    empty.hidden = n > 0;
    if (more) {
      var rest = n - total;
      more.hidden = rest <= 0;
      more.textContent = rest > PAGE ? "Show " + PAGE + " more (" + rest + " not shown)" : "Show the last " + rest;
    }
  }

  /* Filter, rank and sort; resolves to the number of matches. Timed by the benchmark (window.modelregSearch). */
  function apply() {
    var s = state(), key = JSON.stringify(s), mine = ++seq;  // the URL follows once the results show
    if (key !== lastKey) { limit = PAGE; lastKey = key; matches = null; }
    if (isDefault(s)) {  // the page as the server wrote it
      list.innerHTML = original;
      countEl.textContent = originalCount;
      empty.hidden = true;
      if (more) more.hidden = true;
      if (pagerEl) pagerEl.hidden = false;
      if (note) note.hidden = false;
      writeURL(s);
      busy(false);
      return Promise.resolve(parseInt(originalCount, 10));
    }
    if (pagerEl) pagerEl.hidden = true;
    if (note) note.hidden = true;
    busy(true);
    var found = matches ? Promise.resolve(matches) : get("meta.json").then(function (m) { meta = m; return search(s); });
    return found.then(function (docs) {
      if (mine !== seq) return docs.length;
      matches = docs;
      var shown = docs.slice(0, limit);
      return rows(shown).then(function (html) {
        if (mine !== seq) return docs.length;
        show(html.join(""), docs.length, shown.length);
        writeURL(s);
        busy(false);
        return docs.length;
      });
    }).catch(function (err) {
      if (mine === seq) { writeURL(s); busy(false); countEl.textContent = "?"; }
      throw err;
    });
  }

  function run() { apply().catch(function (err) { if (window.console) console.error(err); }); }

  readURL();
  if (more) more.addEventListener("click", function () { limit += PAGE; run(); });
  form.addEventListener("input", run);
  form.addEventListener("change", run);
  form.addEventListener("reset", function () { setTimeout(run, 0); });
  document.addEventListener("keydown", function (e) {
    var q = field("q");
    var typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement && document.activeElement.tagName);
    if (e.key === "/" && !typing) { e.preventDefault(); q.focus(); q.select(); }
    else if (e.key === "Escape" && document.activeElement === q && q.value) { q.value = ""; run(); }
  });
  window.modelregSearch = { apply: apply, state: state };
  var first = apply();
  first.then(null, function () {}).then(function () {
    document.documentElement.setAttribute("data-search-ready", "");
  });
})();

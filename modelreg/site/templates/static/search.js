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
  var FIRST = 12;  // rows shown as soon as they are in (a screenful); the rest of the page follows at once
  var showing = { key: "", count: 0 }, rendered = Promise.resolve();

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

  var decoded = {};  // decoded files and term marks, kept for the page's life: a keystroke reuses them

  function once(key, make) {
    if (!decoded[key]) decoded[key] = make();
    return decoded[key];
  }

  function decode(deltas, into) {  // delta-encoded sorted documents -> marks in a Uint8Array
    for (var i = 0, d = 0; i < deltas.length; i++) { d += deltas[i]; into[d] = 1; }
  }

  function fileKey(prefix) {  // as search.py's file_key
    return prefix.replace(/[^a-z0-9]/g, function (c) { return "_" + ("0" + c.charCodeAt(0).toString(16)).slice(-2); });
  }

  /* The documents holding a word that starts with w (all) and holding w itself (exact), as marks, from
     the prefix shards of search/<folder>/ (t: terms, n: names) whose split prefixes are `splits`. */
  function prefixDocs(folder, splits, w) {
    return once(folder + ":" + w, function () {
      var n = meta.count, all = new Uint8Array(n), exact = new Uint8Array(n);
      for (var i = 1; i <= w.length; i++) {
        var key = w.slice(0, i);
        if (splits.indexOf(key) >= 0) {
          if (i < w.length) continue;
          return get(folder + "/" + fileKey(key) + ".json").then(function (shard) {
            if (shard) { decode(shard["*"], all); decode(shard["="], exact); }
            return { all: all, exact: exact };
          });
        }
        return get(folder + "/" + fileKey(key) + ".json").then(function (shard) {
          for (var word in shard || {}) {
            if (word.lastIndexOf(w, 0) === 0) decode(shard[word], all);
          }
          if (shard && Object.prototype.hasOwnProperty.call(shard, w)) decode(shard[w], exact);
          return { all: all, exact: exact };
        });
      }
      return Promise.resolve({ all: all, exact: exact });
    });
  }

  function termDocs(t) { return prefixDocs("t", meta.split, t); }

  /* The documents of a facet value (search/v/<name>.json), as marks. */
  function facetDocs(name) {
    return once("v:" + name, function () {
      return get("v/" + name + ".json").then(function (deltas) {
        var marks = new Uint8Array(meta.count);
        decode(deltas || [], marks);
        return marks;
      });
    });
  }

  /* A sort key's bucket per document (search/k/<key>.json). */
  function buckets(key) {
    return once("k:" + key, function () {
      return get("k/" + key + ".json").then(function (text) {
        var code = new Uint8Array(128), col = new Uint8Array(meta.count);
        for (var i = 0; i < BUCKET_CHARS.length; i++) code[BUCKET_CHARS.charCodeAt(i)] = i;
        for (var d = 0; d < col.length; d++) col[d] = code[text.charCodeAt(d)];
        return col;
      });
    });
  }

  /* One bucket of a sort key (search/k/<key>/<b>.json): its documents; their values go to values(key). */
  function bucket(key, b) {
    return once("b:" + key + "/" + b, function () {
      return get("k/" + key + "/" + b + ".json").then(function (file) {
        var values = exact(key), docs = [], bound = meta.buckets[key][b];
        for (var i = 0, d = 0; i < file[0].length; i++) {
          d += file[0][i];
          docs.push(d);
          values[d] = file[1].length ? file[1][i] : bound[0];
        }
        return docs;
      });
    });
  }

  function exact(key) { return once("x:" + key, function () { return new Float64Array(meta.count); }); }

  /* The exact values of one sort key, filled in for the buckets bs (a bucket of one value needs no file). */
  function exactValues(key, bs) {
    return Promise.all(bs.map(function (b) {
      var bound = meta.buckets[key][b];
      return !bound || bound[0] === bound[1] ? null : bucket(key, b);
    })).then(function () { return exact(key); });
  }

  /* Models named q (exact) or with a name starting with q (all), as marks, within [lo, hi): the range
     of the org of an "org/name" query (empty if no org has that name), else every document. */
  function nameRanks(q) {
    var slash = q.indexOf("/"), name = q.slice(slash + 1), span = null;
    if (slash >= 0) span = meta.orgs.filter(function (o) { return o[0].toLowerCase() === q.slice(0, slash); })[0] || [null, 0, 0];
    if (name.length < 2) return Promise.resolve(null);
    return prefixDocs("n", meta.name_split, name).then(function (got) {
      return { all: got.all, exact: got.exact, lo: span ? span[1] : 0, hi: span ? span[1] + span[2] : meta.count };
    });
  }

  var SORTS = { size: ["s", -1], "size-asc": ["s", 1], newest: ["d", -1], popular: ["n", -1], seeded: ["h", -1] };
  var WALK = 3, MAX_WALK = 6;  // read a sort key's buckets in order where WALK are expected to hold a page
  var BUCKET_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";

  function isDefault(s) {
    return FIELDS.every(function (name) { return name === "sort" ? s.sort === "name" : !s[name]; });
  }

  /* The buckets of a sort key wholly inside [min, max] (2), partly (1) or not at all (0). */
  function inside(bounds, min, max) {
    return bounds.map(function (b) {
      if (!b || b[1] < min || b[0] > max) return 0;
      return b[0] >= min && b[1] <= max ? 2 : 1;
    });
  }

  /* Every matching document, ranked and sorted: a promise of {docs, exact}, where the first `exact`
     documents (at least `want`) are in their final order and the rest only by rank and sort bucket. */
  function search(s, want) {
    var ts = terms(s.q), q = s.q.trim().toLowerCase(), sort = SORTS[s.sort], n = meta.count;
    var lo = 0, hi = n, facets = [];
    if (s.org) {
      var span = meta.orgs.filter(function (o) { return o[0] === s.org; })[0];
      lo = span ? span[1] : 0; hi = span ? span[1] + span[2] : 0;
    }
    [["license", "l", meta.licenses], ["task", "p", meta.tasks], ["format", "f", meta.formats]].forEach(function (f) {
      if (!s[f[0]]) return;
      var i = f[2].indexOf(s[f[0]]);
      if (i < 0) hi = lo;  // a value no model has: no match
      else facets.push("v/" + f[1] + i);
    });
    if (s.live) facets.push("v/live");
    var min = parseFloat(s.min) * GB, max = parseFloat(s.max) * GB;  // not a number: no bound
    if (isNaN(min)) min = -Infinity;
    if (isNaN(max)) max = Infinity;
    var ranged = min > -Infinity || max < Infinity;
    var zones = ranged ? inside(meta.buckets.s, min, max) : null;
    var edges = [];
    if (ranged) zones.forEach(function (z, b) { if (z === 1) edges.push(b); });
    return Promise.all([
      Promise.all(ts.map(termDocs)),
      q ? nameRanks(q) : Promise.resolve(null),
      Promise.all(facets.map(function (f) { return facetDocs(f.slice(2)); })),
      ranged ? Promise.all([buckets("s"), exactValues("s", edges)]) : null
    ]).then(function (got) {
      var found = got[0], ranks = got[1], marks = got[2], size = got[3], nt = found.length, nf = marks.length;
      var byRank = [[], [], [], []];
      for (var d = lo; d < hi; d++) {
        var ok = true, whole = true, t;
        for (t = 0; t < nt; t++) {
          if (!found[t].all[d]) { ok = false; break; }
          if (!found[t].exact[d]) whole = false;
        }
        if (!ok) continue;
        for (t = 0; t < nf; t++) if (!marks[t][d]) { ok = false; break; }
        if (!ok) continue;
        if (ranged) {
          var z = zones[size[0][d]];
          if (z === 0 || (z === 1 && (size[1][d] < min || size[1][d] > max))) continue;
        }
        byRank[ranks && ranks.all[d] && d >= ranks.lo && d < ranks.hi ? (ranks.exact[d] ? 0 : 1) : (nt && whole ? 2 : 3)].push(d);
      }
      if (!sort) {
        var all = [].concat(byRank[0], byRank[1], byRank[2], byRank[3]);
        return { docs: all, exact: all.length };
      }
      var m = byRank[0].length + byRank[1].length + byRank[2].length + byRank[3].length;
      if (m < 2) return { docs: [].concat(byRank[0], byRank[1], byRank[2], byRank[3]), exact: n };  // nothing to sort
      var skip = sort[0] === "s" && zones ? zones : null;  // buckets the size range leaves out
      var walk = m * WALK >= want * meta.buckets[sort[0]].length ? walked(byRank, sort[0], sort[1], want, skip) : Promise.resolve(null);
      return walk.then(function (result) {
        return result || buckets(sort[0]).then(function (col) { return ordered(byRank, sort[0], sort[1], col, want); });
      });
    });
  }

  /* Where many documents match, the first `want` in the order of a sort key come from its first buckets'
     files, read in order, without its column: by rank, then exact order for the documents of the buckets
     read, then the rest of each rank by document. Null (use the column) if MAX_WALK files do not do. */
  function walked(byRank, key, dir, want, skip) {
    var size = meta.buckets[key].length, rankOf = new Int8Array(meta.count), seen = [[], [], [], []];
    byRank.forEach(function (list, r) { for (var i = 0; i < list.length; i++) rankOf[list[i]] = r + 1; });
    var order = [];
    for (var k = 0; k < size; k++) {
      var b = dir < 0 ? size - 1 - k : k;
      if (meta.buckets[key][b] && !(skip && skip[b] === 0)) order.push(b);
    }
    function done() {  // the number of documents in final order, if at least `want`, else 0
      var ready = 0;
      for (var r = 0; r < 4; r++) {
        if (seen[r].length === byRank[r].length) { ready += seen[r].length; continue; }
        return ready + seen[r].length >= want ? ready + seen[r].length : 0;
      }
      return ready;
    }
    function step(i) {
      var ready = done();
      if (ready || i === order.length) {
        var docs = [];
        byRank.forEach(function (list, r) {
          seen[r].forEach(function (d) { rankOf[d] = 0; docs.push(d); });
          list.forEach(function (d) { if (rankOf[d]) docs.push(d); });
        });
        return { docs: docs, exact: ready || docs.length };
      }
      if (i >= MAX_WALK) return null;
      return bucket(key, order[i]).then(function (members) {
        var values = exact(key), got = [[], [], [], []];
        for (var j = 0; j < members.length; j++) if (rankOf[members[j]]) got[rankOf[members[j]] - 1].push(members[j]);
        got.forEach(function (list, r) {
          list.sort(function (a, c) { return dir * (values[a] - values[c]) || a - c; });
          for (var j = 0; j < list.length; j++) seen[r].push(list[j]);
        });
        return step(i + 1);
      });
    }
    return Promise.resolve(step(0));
  }

  /* Documents by rank, then by a sort key: bucket order for all, exact order for the first `want`. */
  function ordered(byRank, key, dir, col, want) {
    var size = meta.buckets[key].length, docs = [], groups = [];
    byRank.forEach(function (list) {
      var count = new Int32Array(size + 1), b, i;
      for (i = 0; i < list.length; i++) count[col[list[i]]]++;
      var start = new Int32Array(size), at = docs.length;
      for (var k = 0; k < size; k++) {
        b = dir < 0 ? size - 1 - k : k;
        start[b] = at;
        if (count[b]) groups.push([at, at + count[b], b]);
        at += count[b];
      }
      for (i = 0; i < list.length; i++) docs[start[col[list[i]]]++] = list[i];
    });
    var need = [], exact = 0;
    for (var g = 0; g < groups.length && groups[g][0] < want; g++) { need.push(groups[g]); exact = groups[g][1]; }
    if (!need.length) exact = docs.length;
    return exactValues(key, need.map(function (g) { return g[2]; })).then(function (values) {
      need.forEach(function (g) {
        var bound = meta.buckets[key][g[2]];
        if (bound[0] === bound[1]) return;
        var part = docs.slice(g[0], g[1]).sort(function (a, b) { return dir * (values[a] - values[b]) || a - b; });
        for (var i = 0; i < part.length; i++) docs[g[0] + i] = part[i];
      });
      return { docs: docs, exact: exact };
    });
  }

  /* The rows of documents, in order, as promises of their HTML: ids from search/ids/, rows from
     models/<id>/row.json. */
  function rows(docs) {
    var chunk = meta.ids_chunk;
    return docs.map(function (d) {
      return get("ids/" + Math.floor(d / chunk) + ".json").then(function (ids) {
        var id = ids[d % chunk], path = root + "models/" + id + "/row.json";
        if (!files[path]) {
          files[path] = fetch(path).then(function (r) { return r.ok ? r.json() : { html: "" }; })
            .then(function (row) { return row.html; });
        }
        return files[path];
      });
    });
  }

  function busy(on) { list.setAttribute("aria-busy", on ? "true" : "false"); }

  function counts(n, total) {
    countEl.textContent = String(n);
    empty.hidden = n > 0;
    if (more) {
      var rest = n - total;
      more.hidden = rest <= 0;
      more.textContent = rest > PAGE ? "Show " + PAGE + " more (" + rest + " not shown)" : "Show the last " + rest;
    }
  }

  /* Filter, rank and sort; resolves to the number of matches once the first rows show (all of them by
     `rendered()`). Timed by the benchmark (window.modelregSearch). */
  function apply() {
    var s = state(), key = JSON.stringify(s), mine = ++seq;  // the URL follows once the results show
    rendered = Promise.resolve();
    if (key !== lastKey) { limit = PAGE; lastKey = key; matches = null; }
    if (isDefault(s)) {  // the page as the server wrote it
      list.innerHTML = original;
      showing = { key: "", count: 0 };
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
    var found = matches && matches.exact >= Math.min(limit, matches.docs.length) ? Promise.resolve(matches)
      : get("meta.json").then(function (m) { meta = m; return search(s, limit); });
    return found.then(function (result) {
      var docs = result.docs, n = docs.length;
      if (mine !== seq) return n;
      matches = result;
      var shown = docs.slice(0, limit);
      var from = showing.key === key ? Math.min(showing.count, shown.length) : 0;  // rows already listed
      var pending = rows(shown.slice(from)), head = from ? pending.length : Math.min(FIRST, pending.length);
      function finish() { counts(n, shown.length); writeURL(s); busy(false); }  // the count: once all show
      return Promise.all(pending.slice(0, head)).then(function (html) {
        if (mine !== seq) return n;
        if (from) list.insertAdjacentHTML("beforeend", html.join(""));
        else list.innerHTML = html.join("");
        showing = { key: key, count: from + head };
        var rest = pending.slice(head);
        if (!rest.length) finish();
        else {
          rendered = Promise.all(rest).then(function (more) {
            if (mine !== seq) return;
            list.insertAdjacentHTML("beforeend", more.join(""));
            showing.count = shown.length;
            finish();
          });
        }
        return n;
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
  window.modelregSearch = { apply: apply, state: state, rendered: function () { return rendered; } };
  var first = apply();
  first.then(null, function () {}).then(function () {
    document.documentElement.setAttribute("data-search-ready", "");
  });
})();

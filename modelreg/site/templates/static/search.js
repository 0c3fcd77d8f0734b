/* Search as you type over the index. The list is rendered in HTML (it works without JavaScript);
   this script loads search.json (one short row per <li>, same order) and only toggles `hidden`
   on elements whose state changes, and reorders them when the sort changes. State lives in the URL.
   Only the first PAGE matches are shown (a button shows more): laying out thousands of cards on
   every keystroke would take seconds, while filtering 10,000 rows takes milliseconds. */
(function () {
  "use strict";
  var list = document.getElementById("results");
  var form = document.getElementById("filters");
  if (!list || !form) return;
  var countEl = document.getElementById("result-count");
  var empty = document.getElementById("no-results");
  var FIELDS = ["q", "license", "task", "format", "org", "min", "max", "sort"];
  var GB = 1e9;
  var PAGE = 100;
  var more = document.getElementById("show-more");
  var data = null, models = [], order = "name", limit = PAGE, lastKey = "";

  function field(name) { return form.elements[name]; }

  function readURL() {
    var params = new URLSearchParams(window.location.search);
    FIELDS.forEach(function (name) {
      var el = field(name), value = params.get(name);
      if (!el || value === null) return;
      if (el.tagName === "SELECT" && !Array.prototype.some.call(el.options, function (o) { return o.value === value; })) return;
      el.value = value;
    });
  }

  function state() {
    var s = {};
    FIELDS.forEach(function (name) { s[name] = field(name) ? field(name).value.trim() : ""; });
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

  function load(index) {
    data = index;
    var items = list.children, byId = null;
    var rows = index.m;
    for (var i = 0; i < rows.length; i++) {
      var el = items[i];
      if (!el || el.getAttribute("data-model-id") !== rows[i][0]) {
        if (!byId) {  // the page and search.json disagree on order: match by id instead
          byId = {};
          Array.prototype.forEach.call(items, function (li) { byId[li.getAttribute("data-model-id")] = li; });
        }
        el = byId[rows[i][0]];
      }
      if (!el) continue;
      var id = rows[i][0];
      models.push({
        el: el, pos: i, shown: !el.hidden, org: id.split("/")[0],
        hay: id.toLowerCase() + " " + rows[i][1],
        l: rows[i][2], p: rows[i][3], f: rows[i][4], s: rows[i][5], d: rows[i][6], n: rows[i][7]
      });
    }
  }

  function known(values, value) {  // an unknown value matches nothing (not the models without one)
    var i = values.indexOf(value);
    return i < 0 ? -2 : i;
  }

  function matcher(s) {
    var terms = s.q.toLowerCase().split(/\s+/).filter(Boolean);
    var lic = s.license ? known(data.licenses, s.license) : null;
    var task = s.task ? known(data.tasks, s.task) : null;
    var fmt = s.format ? data.formats.indexOf(s.format) : null;
    var bit = fmt === null ? 0 : (fmt < 0 ? -1 : Math.pow(2, fmt));
    var min = s.min ? parseFloat(s.min) * GB : -1;
    var max = s.max ? parseFloat(s.max) * GB : Infinity;
    var org = s.org || null;
    return function (m) {
      if (lic !== null && m.l !== lic) return false;
      if (task !== null && m.p !== task) return false;
      if (bit && (bit < 0 || !(Math.floor(m.f / bit) % 2))) return false;
      if (org !== null && m.org !== org) return false;
      if (m.s < min || m.s > max) return false;
      for (var t = 0; t < terms.length; t++) if (m.hay.indexOf(terms[t]) < 0) return false;
      return true;
    };
  }

  var SORTS = {
    name: function (a, b) { return a.pos - b.pos; },
    size: function (a, b) { return b.s - a.s || a.pos - b.pos; },
    "size-asc": function (a, b) { return a.s - b.s || a.pos - b.pos; },
    newest: function (a, b) { return b.d - a.d || a.pos - b.pos; },
    popular: function (a, b) { return b.n - a.n || a.pos - b.pos; }
  };

  var sorted = [];

  function reorder(sort) {
    var cmp = SORTS[sort] || SORTS.name;
    sorted = models.slice().sort(cmp);
    var frag = document.createDocumentFragment();
    for (var i = 0; i < sorted.length; i++) frag.appendChild(sorted[i].el);
    list.appendChild(frag);
    order = sort;
  }

  /* Filter and sort; returns the number of matches. Timed by the benchmark (window.modelregSearch). */
  function apply() {
    var s = state();
    var key = JSON.stringify(s);
    if (key !== lastKey) { limit = PAGE; lastKey = key; }  // a new search starts from the first page
    if (s.sort !== order) reorder(s.sort);
    var match = matcher(s), n = 0;
    for (var i = 0; i < sorted.length; i++) {
      var m = sorted[i], ok = match(m);
      if (ok) n++;
      var show = ok && n <= limit;
      if (show !== m.shown) { m.el.hidden = !show; m.shown = show; }
    }
    countEl.textContent = String(n);
    empty.hidden = n > 0;
    if (more) {
      more.hidden = n <= limit;
      var rest = n - limit;
      more.textContent = rest > PAGE ? "Show " + PAGE + " more (" + rest + " not shown)" : "Show the last " + rest;
    }
    list.classList.remove("capped");
    writeURL(s);
    return n;
  }

  function showMore() {
    limit += PAGE;
    apply();
  }

  function start(index) {
    load(index);
    sorted = models.slice();
    readURL();
    apply();
    if (more) more.addEventListener("click", showMore);
    form.addEventListener("input", apply);
    form.addEventListener("change", apply);
    form.addEventListener("reset", function () { setTimeout(apply, 0); });
    document.documentElement.setAttribute("data-search-ready", "");
    window.modelregSearch = { apply: apply, state: state };
  }

  document.addEventListener("keydown", function (e) {
    var q = field("q");
    var typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement && document.activeElement.tagName);
    if (e.key === "/" && !typing) { e.preventDefault(); q.focus(); q.select(); }
    else if (e.key === "Escape" && document.activeElement === q && q.value) { q.value = ""; apply(); }
  });

  fetch(list.getAttribute("data-search"))
    .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
    .then(start)
    .catch(function () {
      // Without search.json (e.g. opened from file://) search by id only, from the page itself.
      start({ licenses: [], tasks: [], formats: [], m: Array.prototype.map.call(list.children, function (li) {
        return [li.getAttribute("data-model-id"), "", -1, -1, 0, 0, 0, -1];
      }) });
    });
})();

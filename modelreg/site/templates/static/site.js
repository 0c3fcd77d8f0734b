/* Copy buttons: any element with data-copy (copies its href), data-copy-text, or data-copy-code (copies the
   command in its .snippet). No dependencies. */
(function () {
  "use strict";
  var toast = document.getElementById("toast");
  var timer = null;

  function say(message) {
    if (!toast) return;
    toast.textContent = message;
    toast.classList.add("show");
    clearTimeout(timer);
    timer = setTimeout(function () { toast.classList.remove("show"); }, 1800);
  }

  function fallbackCopy(text) {
    // Plain-HTTP mirrors are not a "secure context", where navigator.clipboard is missing.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(text); });
    }
    return fallbackCopy(text);
  }

  // Without site_url the commands name the .torrent file; served over HTTP the page knows its URL, so the
  // commands fetch it themselves (same quoting as the build: shlex.quote, a JSON string for Python).
  function shellQuote(s) {
    return /^[\w@%+=:,.\/-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\"'\"'") + "'";
  }
  var link = document.querySelector("a#torrent[data-torrent-file]");
  if (link && /^https?:$/.test(location.protocol)) {
    var file = link.getAttribute("data-torrent-file"), url = link.href;
    var shFile = " " + shellQuote(file), pyFile = "lt.load_torrent_file(" + JSON.stringify(file) + ")";
    document.querySelectorAll(".snippet code").forEach(function (code) {
      var t = code.textContent;
      if (t.indexOf(pyFile) >= 0) {
        t = t.replace("import time, libtorrent as lt", "import time, urllib.request, libtorrent as lt")
          .replace(pyFile, "lt.load_torrent_buffer(urllib.request.urlopen(" + JSON.stringify(url) + ").read())");
      } else if (t.slice(-shFile.length) === shFile) {
        t = t.slice(0, -shFile.length) + " " + shellQuote(url);
      }
      code.textContent = t;
    });
    var where = document.getElementById("torrent-where");
    if (where) where.textContent = "These commands fetch the .torrent from this site.";
  }

  document.addEventListener("click", function (event) {
    var el = event.target.closest ? event.target.closest("[data-copy], [data-copy-text], [data-copy-code]") : null;
    if (!el || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    var code = el.hasAttribute("data-copy-code") ? el.closest(".snippet").querySelector("code") : null;
    var text = code ? code.textContent : el.getAttribute("data-copy-text") || el.getAttribute("href");
    if (!text) return;
    event.preventDefault();
    copy(text).then(function () {
      el.classList.add("done");
      say(text.indexOf("magnet:") === 0 ? "Magnet link copied" : "Copied");
      setTimeout(function () { el.classList.remove("done"); }, 1500);
    }, function () {
      if (el.tagName === "A") window.location.href = text;  // cannot copy: open it instead
      else say("Could not copy; select the text instead");
    });
  });
})();

/* Swarm health: "checked 3 h ago" from the ISO date the page carries (the HTML itself stays reproducible). */
(function () {
  "use strict";
  function ago(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 90) return "just now";
    var m = Math.round(s / 60);
    if (m < 90) return m + " min ago";
    var h = Math.round(m / 60);
    if (h < 36) return h + " h ago";
    var d = Math.round(h / 24);
    return d + " day" + (d === 1 ? "" : "s") + " ago";
  }
  var now = Date.now();
  var times = document.querySelectorAll("time[data-ago]");
  for (var i = 0; i < times.length; i++) {
    var el = times[i];
    var when = Date.parse(el.getAttribute("datetime"));
    if (isNaN(when)) continue;
    el.title = el.textContent;
    el.textContent = el.getAttribute("data-ago") + " " + ago(now - when);
  }
})();

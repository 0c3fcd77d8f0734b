/* Copy buttons: any element with data-copy (copies its href) or data-copy-text. No dependencies. */
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

  document.addEventListener("click", function (event) {
    var el = event.target.closest ? event.target.closest("[data-copy], [data-copy-text]") : null;
    if (!el || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    var text = el.getAttribute("data-copy-text") || el.getAttribute("href");
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

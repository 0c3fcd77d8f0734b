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

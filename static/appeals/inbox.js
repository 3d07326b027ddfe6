// The appeals inbox's own keys, beside the console's (accounts/keys.js: j/k move, Enter opens, / search, ? help):
// here "n" claims the next appeal of the inbox's filter, never the next case of the queue.
(function () {
  "use strict";
  function typing(t) {
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }
  // In the capture phase on window: it runs before keys.js's listener on the document, which it then stops.
  window.addEventListener("keydown", function (event) {
    if (event.key !== "n" || event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    event.stopPropagation();
    event.preventDefault();
    var next = document.getElementById("next-appeal-form");
    if (next) next.submit();
  }, true);
  document.addEventListener("DOMContentLoaded", function () {
    var all = document.getElementById("select-all-appeals");
    if (all) all.addEventListener("change", function () {
      document.querySelectorAll("input[name=appeal_ids]").forEach(function (box) { box.checked = all.checked; });
    });
  });
})();

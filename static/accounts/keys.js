// Keyboard for analysts who work the queue all day: j/k move, Enter opens, n next case, / search, ? help.
(function () {
  "use strict";
  var rows = Array.prototype.slice.call(document.querySelectorAll("[data-row-href]"));
  var current = -1;
  var help = document.getElementById("key-help");

  function typing(event) {
    var t = event.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }
  function select(i) {
    if (!rows.length) return;
    current = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach(function (r, j) { r.classList.toggle("selected", j === current); r.setAttribute("aria-selected", j === current ? "true" : "false"); });
    rows[current].scrollIntoView({ block: "nearest" });
  }
  function toggleHelp(show) {
    if (!help) return;
    help.hidden = show === undefined ? !help.hidden : !show;
  }
  // The help's open and close buttons (no inline handlers: the Content-Security-Policy allows no inline script).
  document.querySelectorAll("[data-help]").forEach(function (button) {
    button.addEventListener("click", function () { toggleHelp(button.getAttribute("data-help") === "open"); });
  });
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape") { toggleHelp(false); if (typing(event)) event.target.blur(); return; }
    if (typing(event)) return;
    if (event.key === "j") { select(current + 1); event.preventDefault(); }
    else if (event.key === "k") { select(current - 1); event.preventDefault(); }
    else if (event.key === "Enter" && current >= 0) { window.location.href = rows[current].getAttribute("data-row-href"); event.preventDefault(); }
    else if (event.key === "n") { var next = document.getElementById("next-case-form"); if (next) { next.submit(); event.preventDefault(); } }
    else if (event.key === "/") { var search = document.getElementById("id_q"); if (search) { search.focus(); search.select(); event.preventDefault(); } }
    else if (event.key === "?") { toggleHelp(); event.preventDefault(); }
  });
  rows.forEach(function (row, i) {
    row.addEventListener("click", function (event) {
      if (event.target.closest("a, input, button, label")) return;
      window.location.href = row.getAttribute("data-row-href");
    });
  });
  var all = document.getElementById("select-all");
  if (all) all.addEventListener("change", function () {
    document.querySelectorAll("input[name=case_ids]").forEach(function (box) { box.checked = all.checked; });
  });
  if (rows.length && document.body.hasAttribute("data-autoselect")) select(0);
})();

// Triage queue: keyboard navigation (j/k, Enter, c claim, x select, ? help) and the bulk form's field switching.
// No inline script anywhere (CSP); rows are re-rendered by htmx when the queue changes, so state is looked up live.
(function () {
  "use strict";

  var selectedId = null;

  function rows() {
    return Array.from(document.querySelectorAll(".triage-row"));
  }

  function current() {
    return rows().find(function (row) { return row.dataset.clusterId === selectedId; }) || null;
  }

  function select(row) {
    rows().forEach(function (r) { r.classList.remove("is-selected"); r.removeAttribute("aria-selected"); });
    if (!row) { selectedId = null; return; }
    selectedId = row.dataset.clusterId;
    row.classList.add("is-selected");
    row.setAttribute("aria-selected", "true");
    row.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    var list = rows();
    if (!list.length) return;
    var index = list.indexOf(current());
    var next = index < 0 ? (step > 0 ? 0 : list.length - 1) : Math.min(list.length - 1, Math.max(0, index + step));
    select(list[next]);
  }

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT|BUTTON)$/.test(target.tagName));
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var help = document.getElementById("triage-help");
    if (!help || typing(event.target)) return;
    var row = current();
    switch (event.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "Enter":
        if (!row) return;
        window.location.assign(row.dataset.href);
        break;
      case "c":
        if (!row) return;
        var claim = row.querySelector("[data-claim]");
        if (claim) claim.click();
        break;
      case "x":
        if (!row) return;
        var box = row.querySelector("input[type=checkbox]");
        if (box) box.checked = !box.checked;
        break;
      case "?":
        if (help.open) help.close(); else help.showModal();
        break;
      default:
        return;
    }
    event.preventDefault();
  });

  // Keep the selection across a live refresh of the rows.
  document.addEventListener("htmx:afterSwap", function () {
    var row = current();
    if (row) { row.classList.add("is-selected"); row.setAttribute("aria-selected", "true"); }
  });

  // Clicking a row (not a link, button or box) selects it.
  document.addEventListener("click", function (event) {
    var row = event.target.closest && event.target.closest(".triage-row");
    if (!row || typing(event.target) || event.target.closest("a")) return;
    select(row);
  });

  // Bulk form: show only the inputs the chosen action needs.
  function syncBulk() {
    var op = document.querySelector("[data-bulk-op]");
    if (!op) return;
    document.querySelectorAll("#bulk-form [data-bulk-for]").forEach(function (el) {
      if (el.tagName === "SELECT") return;
      el.hidden = el.dataset.bulkFor.split(" ").indexOf(op.value) < 0;
    });
  }
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("[data-bulk-op]")) syncBulk();
  });
  document.addEventListener("DOMContentLoaded", syncBulk);
})();

// FeedbackHub's own small behaviours. Loaded on every page; no inline script anywhere (CSP).
(function () {
  "use strict";

  // Filter forms marked data-drop-empty leave empty fields out of their htmx requests, so the pushed URL
  // only names the filters in use (/conversations/?environment=dev rather than every field with an empty value).
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.closest || !elt.closest("[data-drop-empty]")) return;
    var data = event.detail.formData;
    if (!data || typeof data.entries !== "function") return;
    var empty = [];
    Array.from(data.entries()).forEach(function (entry) {
      if (entry[1] === "") empty.push(entry[0]);
    });
    empty.forEach(function (name) {
      if (data.getAll(name).every(function (value) { return value === ""; })) data.delete(name);
    });
  });

  // A button with data-toggle-details="<selector>" opens every matching <details>, or closes them all when
  // they are all open already.
  function syncToggleLabel(button) {
    var items = document.querySelectorAll(button.dataset.toggleDetails);
    var allOpen = items.length > 0 && Array.from(items).every(function (d) { return d.open; });
    button.textContent = allOpen ? "Collapse all context" : "Expand all context";
    button.setAttribute("aria-expanded", allOpen ? "true" : "false");
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-toggle-details]");
    if (!button) return;
    var items = Array.from(document.querySelectorAll(button.dataset.toggleDetails));
    var open = !items.every(function (d) { return d.open; });
    items.forEach(function (d) { d.open = open; });
    syncToggleLabel(button);
  });

  document.addEventListener("toggle", function (event) {
    if (!(event.target instanceof HTMLDetailsElement)) return;
    document.querySelectorAll("[data-toggle-details]").forEach(syncToggleLabel);
  }, true);

  // "/" jumps to the page's search box, as in most tools; not while typing somewhere.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    var active = document.activeElement;
    if (active && (active.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName))) return;
    var search = document.querySelector("[data-search-shortcut]");
    if (!search) return;
    event.preventDefault();
    search.focus();
    search.select();
  });

  // Opening a link to a turn (#turn-3) inside collapsed context shows it.
  function revealHash() {
    if (!location.hash) return;
    var target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    for (var node = target; node; node = node.parentElement) {
      if (node instanceof HTMLDetailsElement) node.open = true;
    }
  }
  window.addEventListener("hashchange", revealHash);
  document.addEventListener("DOMContentLoaded", revealHash);
})();

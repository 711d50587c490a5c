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

  // --- one keyboard on every page ------------------------------------------------------------------------------
  // j/k move through the rows of the page's list (any table with a header row, or elements marked
  // data-keyboard-row), focusing each row's first link, so Enter opens it as a click would; ? shows the shortcuts
  // (the page's own dialog where it has one: the review workspace and the triage queue); n/p open the next/previous
  // conversation of the list the current one was opened from.
  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT|BUTTON)$/.test(target.tagName));
  }

  function keyboardRows() {
    return Array.from(document.querySelectorAll("main table:has(thead) tbody tr, main [data-keyboard-row]"))
      .filter(function (row) { return !row.hidden && row.querySelector("a[href]"); });
  }

  function moveRow(step) {
    var rows = keyboardRows();
    if (!rows.length) return false;
    var index = rows.findIndex(function (row) { return row.classList.contains("is-kbd-current"); });
    var next = index < 0 ? (step > 0 ? 0 : rows.length - 1) : Math.min(rows.length - 1, Math.max(0, index + step));
    rows.forEach(function (row) { row.classList.remove("is-kbd-current"); });
    rows[next].classList.add("is-kbd-current");
    rows[next].querySelector("a[href]").focus();
    rows[next].scrollIntoView({ block: "nearest" });
    return true;
  }

  // The conversation list remembers its rows (in this tab) when one is opened, for n/p on the page opened.
  var LIST_KEY = "feedbackhub.conversation-list";

  function rememberList() {
    var rows = Array.from(document.querySelectorAll("tr[data-session-id]"));
    if (!rows.length) return;
    var older = document.querySelector("#results a[rel=next]");
    var newer = document.querySelector("#results a[rel=prev]");
    sessionStorage.setItem(LIST_KEY, JSON.stringify({
      ids: rows.map(function (row) { return row.dataset.sessionId; }),
      list: location.pathname + location.search,
      older: older ? older.getAttribute("href") : null,
      newer: newer ? newer.getAttribute("href") : null,
    }));
  }

  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("tr[data-session-id] a")) rememberList();
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && event.target.closest && event.target.closest("tr[data-session-id]")) rememberList();
  }, true);

  function listNeighbour(step) {
    var here = document.querySelector("[data-conversation-id]");
    var saved = JSON.parse(sessionStorage.getItem(LIST_KEY) || "null");
    if (!here || !saved) return null;
    var index = saved.ids.indexOf(here.dataset.conversationId);
    if (index < 0) return null;
    var target = saved.ids[index + step];
    if (target) {
      return here.dataset.conversationUrl.replace(/\/0\/$/, "/" + target + "/");
    }
    // Past the end of the remembered page: the list's next (or previous) page, where the walk continues.
    return step > 0 ? saved.older : saved.newer;
  }

  function showListNav() {
    var nav = document.querySelector("[data-list-nav]");
    if (!nav) return;
    var saved = JSON.parse(sessionStorage.getItem(LIST_KEY) || "null");
    var here = document.querySelector("[data-conversation-id]");
    if (!saved || !here || saved.ids.indexOf(here.dataset.conversationId) < 0) return;
    var position = saved.ids.indexOf(here.dataset.conversationId) + 1;
    nav.querySelector("[data-list-back]").setAttribute("href", saved.list);
    nav.querySelector("[data-list-position]").textContent = position + " of " + saved.ids.length + " on the list";
    var prev = listNeighbour(-1), next = listNeighbour(1);
    var prevLink = nav.querySelector("[data-list-prev]"), nextLink = nav.querySelector("[data-list-next]");
    if (prev) prevLink.setAttribute("href", prev); else prevLink.hidden = true;
    if (next) nextLink.setAttribute("href", next); else nextLink.hidden = true;
    nav.hidden = false;
  }
  document.addEventListener("DOMContentLoaded", showListNav);

  function openHelp() {
    // Pages with their own shortcuts dialog handle "?" themselves.
    if (document.querySelector("dialog[data-own-shortcuts]")) return false;
    var help = document.getElementById("page-help");
    if (!help) return false;
    if (help.open) help.close(); else help.showModal();
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (document.querySelector("dialog[open]") && event.key !== "?") return;
    var handled = false;
    var ownKeys = document.querySelector("dialog[data-own-shortcuts]");
    switch (event.key) {
      case "j": handled = !ownKeys && moveRow(1); break;
      case "k": handled = !ownKeys && moveRow(-1); break;
      case "?": handled = openHelp(); break;
      case "n":
      case "p": {
        var href = listNeighbour(event.key === "n" ? 1 : -1);
        if (href) { window.location.assign(href); handled = true; }
        break;
      }
      default: return;
    }
    if (handled) event.preventDefault();
  });

  // A drop-down narrower than its option (long model versions) shows the whole choice on hover.
  function titleSelect(select) {
    var option = select.selectedOptions && select.selectedOptions[0];
    if (option) select.title = option.textContent.trim(); else select.removeAttribute("title");
  }
  document.addEventListener("change", function (event) {
    if (event.target instanceof HTMLSelectElement) titleSelect(event.target);
  });
  function titleSelects(root) {
    (root || document).querySelectorAll("select").forEach(titleSelect);
    (root || document).querySelectorAll("select option").forEach(function (option) {
      if (!option.title) option.title = option.textContent.trim();
    });
  }
  document.addEventListener("DOMContentLoaded", function () { titleSelects(document); });
  document.addEventListener("htmx:afterSettle", function (event) { titleSelects(event.target); });
})();

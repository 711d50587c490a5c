// The widget key admin page: a live preview of the widget with the key's categories, as they are edited.
(function () {
  "use strict";
  var host = document.getElementById("widget-preview");
  if (!host || !window.FeedbackHub) return;
  var config = JSON.parse(document.getElementById("widget-preview-config").textContent);
  var field = document.getElementById("id_categories");

  function categories() {
    if (!field) return config.categories;
    return field.value.split(",").map(function (c) { return c.trim(); }).filter(Boolean);
  }

  function render() {
    var fresh = document.createElement("div");
    host.replaceWith(fresh);
    fresh.id = "widget-preview";
    host = fresh;
    window.FeedbackHub.attach(host, { conversation: "preview", turn: 0, preview: true, categories: categories() });
  }

  render();
  if (field) field.addEventListener("input", render);
})();

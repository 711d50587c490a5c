// The dataset page: refusals (400, 403, 409) come back as fragments that say why; show them in place rather than
// dropping them as htmx does with error responses by default.
(function () {
  "use strict";
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if ((status === 400 || status === 403 || status === 409) && event.detail.elt.closest("[data-swap-errors]")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();

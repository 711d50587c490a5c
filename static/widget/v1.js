/*! FeedbackHub feedback widget v1 (docs/ingest.md). No dependencies; renders in a Shadow DOM. */
(function () {
  "use strict";
  if (window.FeedbackHub && window.FeedbackHub.version) return;

  var script = document.currentScript;
  var settings = {
    key: script ? script.getAttribute("data-key") || "" : "",
    endpoint: script ? new URL(script.src, location.href).origin : location.origin,
  };
  var config = null; // the key's {source, categories}, fetched once

  var CSS = [
    ":host{all:initial;display:block;font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1f2328}",
    "*{box-sizing:border-box;font:inherit}",
    ".fh{display:flex;flex-wrap:wrap;align-items:center;gap:.5em;margin:.4em 0}",
    ".q{color:#59636e}",
    "button{cursor:pointer;border:1px solid #d1d9e0;background:#fff;border-radius:6px;padding:.25em .7em;color:inherit}",
    "button:hover{background:#f6f8fa}",
    "button:focus-visible,input:focus-visible,textarea:focus-visible{outline:2px solid #0969da;outline-offset:2px}",
    "button[aria-pressed=true]{background:#ddf4ff;border-color:#0969da}",
    ".form{flex-basis:100%;border:1px solid #d1d9e0;border-radius:8px;padding:.75em;background:#fff}",
    "fieldset{border:0;padding:0;margin:0 0 .6em}",
    "legend{font-weight:600;margin-bottom:.4em;padding:0}",
    ".chips{display:flex;flex-wrap:wrap;gap:.4em}",
    ".chip{display:inline-flex;align-items:center;gap:.3em;border:1px solid #d1d9e0;border-radius:999px;",
    "padding:.2em .7em;cursor:pointer}",
    ".chip:has(input:checked){background:#ddf4ff;border-color:#0969da}",
    "label.block{display:block;margin:.5em 0 .2em}",
    "textarea{width:100%;min-height:4em;border:1px solid #d1d9e0;border-radius:6px;padding:.4em;resize:vertical}",
    ".actions{display:flex;gap:.5em;margin-top:.6em}",
    ".primary{background:#1f883d;border-color:#1f883d;color:#fff}",
    ".primary:hover{background:#1a7f37}",
    ".err{color:#cf222e;flex-basis:100%}",
    "[hidden]{display:none!important}",
  ].join("");

  function sheet() {
    if (!sheet.cached) {
      sheet.cached = new CSSStyleSheet();
      sheet.cached.replaceSync(CSS);
    }
    return sheet.cached;
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === "text") node.textContent = attrs[name];
      else if (name.slice(0, 2) === "on") node.addEventListener(name.slice(2), attrs[name]);
      else if (attrs[name] !== false && attrs[name] != null) node.setAttribute(name, attrs[name] === true ? "" : attrs[name]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function uid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "fh-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }

  function url(path) {
    return settings.endpoint + path + "?key=" + encodeURIComponent(settings.key);
  }

  function loadConfig() {
    if (!config) {
      var refused = function () {
        throw new Error("this page may not use the widget key, or FeedbackHub is unreachable");
      };
      config = fetch(url("/widget/v1/config"), { credentials: "omit", mode: "cors" }).then(function (r) {
        if (!r.ok) refused();
        return r.json();
      }, refused);
      config.catch(function () { config = null; });
    }
    return config;
  }

  function send(event) {
    var body = Object.assign({ id: uid(), created_at: new Date().toISOString() }, event);
    return fetch(url("/widget/v1/feedback"), {
      method: "POST",
      credentials: "omit",
      mode: "cors",
      keepalive: true,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    }).then(function (r) {
      if (!r.ok && r.status !== 409) {
        return r.json().catch(function () { return {}; }).then(function (data) {
          var message = (data.error && data.error.message) || "status " + r.status;
          throw new Error(message);
        });
      }
      return r.status;
    });
  }

  function Widget(host, options) {
    this.options = options;
    this.root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
    this.root.adoptedStyleSheets = [sheet()];
    this.ref = { conversation: String(options.conversation), turn: options.turn };
    if (options.turnId != null) this.ref = { conversation: String(options.conversation), turn_id: String(options.turnId) };
    this.renderAsk();
    var reply = options.reply || host.parentElement;
    var self = this;
    if (reply && !options.preview) {
      reply.addEventListener("copy", function () {
        if (self.copied) return;
        self.copied = true;
        self.post({ type: "copy" }).catch(function () {});
      });
    }
  }

  Widget.prototype.post = function (event) {
    if (this.options.preview) return Promise.resolve(201);
    return send(Object.assign({}, this.ref, event));
  };

  Widget.prototype.clear = function () {
    while (this.root.firstChild) this.root.removeChild(this.root.firstChild);
  };

  Widget.prototype.renderAsk = function () {
    var self = this;
    this.clear();
    this.up = el("button", { type: "button", "aria-label": "Helpful", "aria-pressed": "false", text: "\uD83D\uDC4D",
      onclick: function () { self.thumbsUp(); } });
    this.down = el("button", { type: "button", "aria-label": "Not helpful", "aria-pressed": "false",
      "aria-expanded": "false", text: "\uD83D\uDC4E", onclick: function () { self.thumbsDown(); } });
    this.error = el("p", { class: "err", role: "alert", hidden: true });
    this.bar = el("div", { class: "fh", role: "group", "aria-label": "Rate this answer" }, [
      el("span", { class: "q", text: this.options.question || "Was this helpful?" }), this.up, this.down, this.error,
    ]);
    this.root.appendChild(this.bar);
  };

  Widget.prototype.fail = function (err, what) {
    this.error.textContent = (what || "Could not send your feedback: ") + err.message;
    this.error.hidden = false;
  };

  Widget.prototype.thanks = function () {
    this.clear();
    var note = el("p", { class: "fh", role: "status", tabindex: "-1", text: "Thank you for your feedback." });
    this.root.appendChild(note);
    note.focus();
  };

  Widget.prototype.thumbsUp = function () {
    var self = this;
    this.up.setAttribute("aria-pressed", "true");
    this.post({ type: "thumbs_up" }).then(function () { self.thanks(); }, function (err) { self.fail(err); });
  };

  Widget.prototype.thumbsDown = function () {
    var self = this;
    if (this.form) { this.form.querySelector("input,textarea").focus(); return; }
    this.down.setAttribute("aria-pressed", "true");
    this.down.setAttribute("aria-expanded", "true");
    var categories = this.options.categories;
    var ready = categories ? Promise.resolve({ categories: categories }) : loadConfig();
    ready.then(function (cfg) { self.renderForm(cfg.categories || []); },
      function (err) { self.fail(err, "Could not open the feedback form: "); });
  };

  Widget.prototype.renderForm = function (categories) {
    var self = this;
    var n = Widget.count = (Widget.count || 0) + 1;
    var chips = categories.map(function (name) {
      return el("label", { class: "chip" }, [el("input", { type: "checkbox", name: "category", value: name }),
        document.createTextNode(name)]);
    });
    var text = el("textarea", { id: "fh-text-" + n, name: "text", maxlength: "4000" });
    var better = el("textarea", { id: "fh-better-" + n, name: "correction", maxlength: "20000" });
    var betterWrap = el("div", { hidden: true }, [
      el("label", { class: "block", for: "fh-better-" + n, text: "A better answer" }), better]);
    var toggle = el("button", { type: "button", "aria-expanded": "false", text: "Suggest a better answer",
      onclick: function () {
        betterWrap.hidden = !betterWrap.hidden;
        toggle.setAttribute("aria-expanded", String(!betterWrap.hidden));
        if (!betterWrap.hidden) better.focus();
      } });
    var submit = el("button", { type: "submit", class: "primary", text: "Send feedback" });
    this.form = el("form", { class: "form", "aria-label": "What was wrong with this answer?",
      onsubmit: function (e) {
        e.preventDefault();
        var picked = Array.prototype.filter.call(self.form.querySelectorAll("input[name=category]"),
          function (box) { return box.checked; }).map(function (box) { return box.value; });
        submit.disabled = true;
        self.post({ type: "thumbs_down", categories: picked, text: text.value.trim(), correction: better.value.trim() })
          .then(function () { self.thanks(); }, function (err) { submit.disabled = false; self.fail(err); });
      } }, [
      chips.length ? el("fieldset", {}, [el("legend", { text: "What was wrong?" }), el("div", { class: "chips" }, chips)])
        : null,
      el("label", { class: "block", for: "fh-text-" + n, text: "Tell us more (optional)" }), text,
      el("div", { class: "actions" }, [toggle]), betterWrap,
      el("div", { class: "actions" }, [submit, el("button", { type: "button", text: "Cancel", onclick: function () {
        self.form = null;
        self.renderAsk();
        self.down.focus();
      } })]),
    ]);
    this.bar.appendChild(this.form);
    (this.form.querySelector("input") || text).focus();
  };

  window.FeedbackHub = {
    version: "1",
    /** Point the widget at a key (and a FeedbackHub other than the one serving the script). */
    init: function (options) {
      if (options.key) settings.key = options.key;
      if (options.endpoint) settings.endpoint = options.endpoint.replace(/\/$/, "");
      config = null;
    },
    /** Render the widget in `element`, for {conversation, turn} (or turnId); `reply` is the element whose copy
     * counts as an implicit signal (default: the element's parent). */
    attach: function (element, options) {
      if (!element || !options || options.conversation == null || (options.turn == null && options.turnId == null)) {
        throw new Error("FeedbackHub.attach(element, {conversation, turn}) needs an element, a conversation and a turn");
      }
      return new Widget(element, options);
    },
    /** Record an implicit signal: kind is "regenerate", "abandon", "rephrase" or "copy". */
    signal: function (kind, options) {
      var ref = { conversation: String(options.conversation), type: kind };
      if (options.turnId != null) ref.turn_id = String(options.turnId); else ref.turn = options.turn;
      return send(ref);
    },
  };
})();

// Review workspace: selection toolbar, composer, highlights, margin cards, filters, keyboard, live updates.
// A module loaded from 'self' (no inline script: the CSP forbids it). Page data comes from json_script and from the
// server-rendered cards' data attributes. Offsets sent to and read from the server are Unicode code points of the
// stored reply text; the DOM speaks UTF-16, so every crossing goes through toCodePoints / toUtf16. A reply is read
// either as its stored text ([data-reply-text], whose text content is exactly the turn text) or formatted
// ([data-reply-md], rendered Markdown whose text pieces are spans carrying their range of the stored text:
// data-src-start / data-src-end; annotations/rendering.py).
import {
  createTextPositionSelectorMatcher,
  highlightText,
} from "../vendor/apache-annotator-dom-0.2.0/annotator-dom.min.js";


const config = JSON.parse(document.getElementById("review-config").textContent);
const review = document.getElementById("review");
const toolbar = document.getElementById("sel-toolbar");
const composerTemplate = document.getElementById("composer-template");
const shortcutsDialog = document.getElementById("shortcuts");
const segmenter = typeof Intl.Segmenter === "function" ? new Intl.Segmenter(undefined, { granularity: "grapheme" }) : null;
const tagByHotkey = new Map(config.tags.filter((t) => t.hotkey).map((t) => [t.hotkey, t]));

let stamp = review.dataset.stamp;
let pending = null; // {reply, start, end, exact} in code points: the selection the toolbar acts on

// --- code points <-> UTF-16 ------------------------------------------------------------------------------------------

/** UTF-16 offset -> code-point offset in `text`. */
function toCodePoints(text, utf16) {
  let cp = 0;
  for (let i = 0; i < utf16; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) i++; // a surrogate pair is one code point
    cp++;
  }
  return cp;
}

/** Code-point offset -> UTF-16 offset in `text`. */
function toUtf16(text, cp) {
  let i = 0;
  for (let n = 0; n < cp && i < text.length; n++) {
    const c = text.charCodeAt(i);
    i += c >= 0xd800 && c <= 0xdbff && i + 1 < text.length ? 2 : 1;
  }
  return i;
}

/** Widen [start, end) (UTF-16) to whole grapheme clusters so emoji, ZWJ sequences and combining marks stay whole. */
function snapToGraphemes(text, start, end) {
  if (!segmenter) return [start, end];
  let s = start;
  let e = end;
  for (const seg of segmenter.segment(text)) {
    const segEnd = seg.index + seg.segment.length;
    if (seg.index < start && start < segEnd) s = seg.index;
    if (seg.index < end && end < segEnd) e = segEnd;
    if (seg.index >= end) break;
  }
  return [s, e];
}

// --- highlights --------------------------------------------------------------------------------------------------------

const rawOf = (reply) => reply.querySelector("[data-reply-text]");
const formattedOf = (reply) => reply.querySelector("[data-reply-md]");
const isFormatted = (view) => view.hasAttribute("data-reply-md");
/** The view of a reply being read: formatted Markdown, or the stored text as it is. */
function replyText(reply) {
  const formatted = formattedOf(reply);
  return formatted && !formatted.hidden ? formatted : rawOf(reply);
}
/** The stored text of a reply (the raw view's text content, marks included: they wrap, never add, text). */
const sourceOf = (reply) => rawOf(reply).textContent;
const cardsOf = (turnId) => document.getElementById(`cards-${turnId}`);
const mappedSpans = (view) => view.querySelectorAll("span[data-src-start]");
const spanRange = (span) => [Number(span.dataset.srcStart), Number(span.dataset.srcEnd)];
const codePointLength = (text) => toCodePoints(text, text.length);

function clearMarks(textEl) {
  for (const mark of textEl.querySelectorAll("mark.hl")) {
    mark.replaceWith(...mark.childNodes);
  }
  textEl.normalize();
}

/** Code-point offset in the stored text of a boundary point in a formatted view. Inside a mapped span: its place
 * there (a span standing for its range as a whole, .md-atomic, gives its start or end). Elsewhere (between blocks):
 * the next span's start for a selection's start, the previous span's end for its end. */
function sourceOffset(view, node, offset, edge) {
  const el = node.nodeType === Node.ELEMENT_NODE ? node : node.parentElement;
  const span = el?.closest("span[data-src-start]");
  if (span && view.contains(span)) {
    const [s, e] = spanRange(span);
    const local = utf16Offset(span, node, offset);
    // A boundary on the edge of a span belongs with the text selected: an end at a span's start is the previous
    // span's end, a start at a span's end the next span's start (the markup between them stays out).
    const atEdge = edge === "end" ? local === 0 : local >= span.textContent.length;
    if (atEdge) {
      const spans = [...mappedSpans(view)];
      const neighbour = spans[spans.indexOf(span) + (edge === "end" ? -1 : 1)];
      if (neighbour) return spanRange(neighbour)[edge === "end" ? 1 : 0];
    }
    if (span.classList.contains("md-atomic")) {
      if (local === 0) return s;
      if (local >= span.textContent.length) return e;
      return edge === "start" ? s : e;
    }
    return Math.min(e, s + toCodePoints(span.textContent, local));
  }
  const spans = [...mappedSpans(view)];
  const place = (sp) => {
    const r = document.createRange();
    r.selectNodeContents(sp);
    return r.comparePoint(node, offset); // -1: the point is before the span, 1: after it
  };
  if (edge === "start") {
    const next = spans.find((sp) => place(sp) <= 0);
    return next ? spanRange(next)[0] : spans.length ? spanRange(spans[spans.length - 1])[1] : 0;
  }
  const previous = spans.findLast((sp) => place(sp) >= 0);
  return previous ? spanRange(previous)[1] : spans.length ? spanRange(spans[0])[0] : 0;
}

/** A DOM range inside a reply's view as UTF-16 offsets [start, end) of the stored text. */
function sourceRange(reply, view, range) {
  if (!isFormatted(view)) {
    return [utf16Offset(view, range.startContainer, range.startOffset),
      utf16Offset(view, range.endContainer, range.endOffset)];
  }
  const source = sourceOf(reply);
  return [toUtf16(source, sourceOffset(view, range.startContainer, range.startOffset, "start")),
    toUtf16(source, sourceOffset(view, range.endContainer, range.endOffset, "end"))];
}

function cardVisible(card) {
  return !card.hidden && !card.dataset.deleted;
}

/** The selection's boundaries inside `textEl` as UTF-16 offsets (or null), to survive re-rendering the marks. */
function saveSelection(textEl) {
  const sel = document.getSelection();
  if (!sel || sel.isCollapsed || !textEl.contains(sel.anchorNode) || !textEl.contains(sel.focusNode)) return null;
  // Setting a selection focuses its focusable ancestor (the reply): only restore while focus is there already.
  const active = document.activeElement;
  if (active && active !== document.body && !active.contains(textEl)) return null;
  return [utf16Offset(textEl, sel.anchorNode, sel.anchorOffset), utf16Offset(textEl, sel.focusNode, sel.focusOffset)];
}

/** The text node and offset at UTF-16 offset `at` of `textEl`'s text. */
function pointAt(textEl, at) {
  const walker = document.createTreeWalker(textEl, NodeFilter.SHOW_TEXT);
  let node = walker.nextNode();
  let seen = 0;
  while (node) {
    if (at <= seen + node.length) return [node, at - seen];
    seen += node.length;
    node = walker.nextNode();
  }
  return [textEl, textEl.childNodes.length];
}

function restoreSelection(textEl, saved) {
  if (!saved) return;
  document.getSelection().setBaseAndExtent(...pointAt(textEl, saved[0]), ...pointAt(textEl, saved[1]));
}

async function paintReply(reply) {
  const textEl = replyText(reply);
  // Repainting replaces the text nodes; a selection someone is making (mouse or Shift+arrows) must not be lost.
  const saved = saveSelection(textEl);
  try {
    // Only the view being read carries marks (the margin lines cards up with them).
    for (const view of [rawOf(reply), formattedOf(reply)]) if (view && view !== textEl) clearMarks(view);
    await paintMarks(reply, textEl);
  } finally {
    restoreSelection(textEl, saved);
  }
}

/** Anchored, visible cards of a reply, outermost span first: a span painted later nests inside the earlier marks, so
 * the innermost highlight ends up on top (and takes the click); identical spans keep their card order. */
function paintOrder(cards, text) {
  const spans = [];
  for (const card of cards.querySelectorAll(".card")) {
    if (!cardVisible(card) || card.dataset.start === "" || card.dataset.anchor !== "anchored") continue;
    const start = Number(card.dataset.start);
    const end = Number(card.dataset.end);
    if (start < end && toUtf16(text, end) <= text.length) spans.push({ card, start, end });
  }
  return spans.sort((a, b) => a.start - b.start || b.end - a.end);
}

function markClasses(card) {
  const tags = card.dataset.tags.trim().split(/\s+/).filter(Boolean);
  const classes = ["hl"];
  if (tags.length) classes.push(`tag-c-${tags[0]}`);
  // A decided suggestion is drawn as history (accepted or rejected), never as a pending deletion.
  if (card.dataset.kind === "suggestion") classes.push("hl-suggestion", `hl-${card.dataset.suggestion}`);
  if (card.dataset.status === "resolved") classes.push("hl-resolved");
  return classes.join(" ");
}

/** Where a highlight [start, end) of the stored text is painted in a view: [element, start, end] in code points of
 * the element's text. The raw view is the stored text; in a formatted one, each mapped span the highlight touches
 * (a span standing for its range as a whole, all of it). */
function paintTargets(view, start, end) {
  if (!isFormatted(view)) return [[view, start, end]];
  const targets = [];
  for (const span of mappedSpans(view)) {
    const [s, e] = spanRange(span);
    if (e <= start || s >= end) continue;
    if (span.classList.contains("md-atomic")) targets.push([span, 0, codePointLength(span.textContent)]);
    else targets.push([span, Math.max(start, s) - s, Math.min(end, e) - s]);
  }
  return targets.filter(([, s, e]) => s < e);
}

async function paintMarks(reply, textEl) {
  clearMarks(textEl);
  const text = sourceOf(reply);
  const cards = cardsOf(reply.dataset.turnId);
  if (!cards) return;
  for (const { card, start, end } of paintOrder(cards, text)) {
    for (const [element, from, to] of paintTargets(textEl, start, end)) {
      // A fresh scope per highlight (and mapped span): wrapping text in marks splits and moves the text nodes a
      // previous scope held, which left it empty ("Scope contains no text nodes") once a highlight covered the
      // whole reply.
      const scope = document.createRange();
      scope.selectNodeContents(element);
      // The library's TextPositionSelector counts code points, as the W3C model and the server do.
      const matcher = createTextPositionSelectorMatcher({ type: "TextPositionSelector", start: from, end: to });
      for await (const range of matcher(scope)) {
        highlightText(range, "mark", { class: markClasses(card), "data-annotation-id": card.dataset.annotationId });
        break;
      }
    }
    const marks = textEl.querySelectorAll(`mark[data-annotation-id="${card.dataset.annotationId}"]`);
    if (marks.length && card.dataset.kind === "suggestion" && card.dataset.suggestion === "pending") {
      // The insertion is drawn by CSS (::after from the attribute): the reply's text content stays the turn text.
      marks[marks.length - 1].dataset.replacement = card.dataset.replacement;
      marks[marks.length - 1].classList.add("hl-insert");
    }
    if (card.classList.contains("is-active")) marks.forEach((m) => m.classList.add("is-active"));
  }
}

let painting = Promise.resolve();
function repaint(replies) {
  const list = replies || [...document.querySelectorAll(".reply")];
  painting = painting.then(async () => {
    for (const reply of list) await paintReply(reply);
    layout();
  });
  return painting;
}

// --- margin layout -----------------------------------------------------------------------------------------------------

function layout() {
  for (const aside of document.querySelectorAll("aside.cards")) {
    const reply = document.getElementById(`turn-${aside.dataset.turn}`);
    const top0 = aside.getBoundingClientRect().top + window.scrollY;
    const items = [];
    for (const el of aside.children) {
      if (el.hidden) continue;
      let desired = 0;
      const id = el.dataset.annotationId;
      const mark = id ? reply.querySelector(`mark[data-annotation-id="${id}"]`) : null;
      if (mark) desired = mark.getBoundingClientRect().top + window.scrollY - top0;
      else if (el._anchorTop !== undefined) desired = el._anchorTop - top0;
      items.push([Math.max(0, desired), el]);
    }
    items.sort((x, y) => x[0] - y[0]); // stable: equal tops keep document order
    let bottom = 0;
    for (const [desired, el] of items) {
      const top = Math.max(desired, bottom);
      el.style.top = `${Math.round(top)}px`;
      bottom = top + el.offsetHeight + 8;
    }
    aside.style.minHeight = `${Math.round(bottom)}px`;
  }
}

const resizeObserver = new ResizeObserver(() => requestAnimationFrame(layout));
function observeCards(root) {
  root.querySelectorAll(".card, .composer").forEach((el) => resizeObserver.observe(el));
}

// --- filters ---------------------------------------------------------------------------------------------------------

const filters = {
  tag: document.getElementById("filter-tag"),
  author: document.getElementById("filter-author"),
  status: document.getElementById("filter-status"),
};

function applyFilters() {
  const tag = filters.tag.value;
  const author = filters.author.value;
  const status = filters.status.value;
  for (const card of document.querySelectorAll(".card")) {
    const tags = card.dataset.tags.trim().split(/\s+/);
    const show =
      (!tag || tags.includes(tag)) && (!author || card.dataset.author === author) &&
      (!status || card.dataset.status === status);
    card.hidden = !show;
  }
  repaint();
}
Object.values(filters).forEach((f) => f.addEventListener("change", applyFilters));

function ensureAuthorOption(card) {
  const id = card.dataset.author;
  if (!id || filters.author.querySelector(`option[value="${CSS.escape(id)}"]`)) return;
  const name = card.querySelector(".author")?.textContent || id;
  filters.author.append(new Option(name, id));
}

// --- end-user feedback filter: replies (with the turns leading up to each) by their feedback events --------------

const feedbackFilter = document.getElementById("filter-feedback");
const feedbackCount = document.getElementById("feedback-count");

function feedbackMatches(reply, wanted) {
  const flags = reply.dataset.feedback.split(/\s+/).filter(Boolean);
  if (!wanted) return true;
  return wanted === "none" ? !flags.includes("any") : flags.includes(wanted);
}

function applyFeedbackFilter() {
  const wanted = feedbackFilter.value;
  let leading = []; // context rows (the user's question) before the next reply
  let shown = 0;
  let total = 0;
  let lastShown = true;
  for (const row of review.querySelectorAll(":scope > section.turn-row")) {
    const reply = row.querySelector(".reply");
    if (!reply) {
      leading.push(row);
      continue;
    }
    lastShown = feedbackMatches(reply, wanted);
    total += 1;
    shown += lastShown ? 1 : 0;
    for (const el of [...leading, row]) el.hidden = !lastShown;
    leading = [];
  }
  for (const el of leading) el.hidden = !lastShown;
  feedbackCount.textContent = wanted ? `${shown} of ${total} replies` : "";
  const url = new URL(window.location.href);
  if (wanted) url.searchParams.set("feedback", wanted);
  else url.searchParams.delete("feedback");
  window.history.replaceState(window.history.state, "", url);
  layout();
}
feedbackFilter.addEventListener("change", applyFeedbackFilter);

function feedbackFilterFromUrl() {
  const wanted = new URLSearchParams(window.location.search).get("feedback");
  if (wanted && feedbackFilter.querySelector(`option[value="${CSS.escape(wanted)}"]`)) {
    feedbackFilter.value = wanted;
    applyFeedbackFilter();
  }
}

// --- raw / formatted view of a reply, remembered per user and reply in localStorage ---------------------------------

const VIEW_KEY = `review:raw-replies:${config.userId}`;
const VIEW_MEMORY = 2000; // replies remembered; the oldest choices are forgotten first

function rawChoices() {
  try {
    return JSON.parse(window.localStorage.getItem(VIEW_KEY) || "{}");
  } catch {
    return {}; // storage disabled or a damaged entry: every reply formatted
  }
}

function rememberView(turnId, raw) {
  const choices = rawChoices();
  delete choices[turnId];
  if (raw) choices[turnId] = 1;
  const ids = Object.keys(choices);
  for (const id of ids.slice(0, Math.max(0, ids.length - VIEW_MEMORY))) delete choices[id];
  try {
    window.localStorage.setItem(VIEW_KEY, JSON.stringify(choices));
  } catch {
    // storage full or disabled: the choice holds for this page only
  }
}

function showView(reply, raw) {
  const formatted = formattedOf(reply);
  if (!formatted) return;
  formatted.hidden = raw;
  rawOf(reply).hidden = !raw;
  // A toggle button: pressed while the raw text is shown.
  reply.querySelector("[data-action=view]").setAttribute("aria-pressed", String(raw));
}

function restoreViews() {
  const choices = rawChoices();
  for (const reply of document.querySelectorAll(".reply.has-formatted")) {
    if (choices[reply.dataset.turnId]) showView(reply, true);
  }
}

function toggleView(reply) {
  const raw = !rawOf(reply).hidden;
  showView(reply, !raw);
  rememberView(reply.dataset.turnId, !raw);
  return repaint([reply]);
}

// --- selection and toolbar -------------------------------------------------------------------------------------------

/** UTF-16 offset of a DOM boundary point inside `textEl`'s text (marks included: they wrap, never add, text). */
function utf16Offset(textEl, node, offset) {
  const before = document.createRange();
  before.setStart(textEl, 0);
  before.setEnd(node, offset);
  return before.toString().length;
}

/** The reply text a selection starts or ends in (a selection may stray into the reply's label or the next reply). */
function replyTextOf(range) {
  for (const node of [range.startContainer, range.endContainer]) {
    const el = node.nodeType === Node.ELEMENT_NODE ? node : node.parentElement;
    const reply = el?.closest(".reply");
    if (reply) return replyText(reply);
  }
  return null;
}

/** `range` cut to the part inside `textEl`, or null when nothing of it is inside. */
function clampTo(range, textEl) {
  const inner = document.createRange();
  inner.selectNodeContents(textEl);
  if (range.compareBoundaryPoints(Range.END_TO_START, inner) >= 0) return null; // starts after the text
  if (range.compareBoundaryPoints(Range.START_TO_END, inner) <= 0) return null; // ends before it
  const clamped = range.cloneRange();
  if (clamped.compareBoundaryPoints(Range.START_TO_START, inner) < 0) clamped.setStart(inner.startContainer, 0);
  if (clamped.compareBoundaryPoints(Range.END_TO_END, inner) > 0) {
    clamped.setEnd(inner.endContainer, inner.endOffset);
  }
  return clamped.collapsed ? null : clamped;
}

function selectionInReply() {
  const sel = document.getSelection();
  if (!sel || sel.isCollapsed || sel.rangeCount === 0) return null;
  const textEl = replyTextOf(sel.getRangeAt(0));
  const range = textEl && clampTo(sel.getRangeAt(0), textEl);
  if (!range) return null;
  const reply = textEl.closest(".reply");
  const text = sourceOf(reply);
  const [s16, e16] = snapToGraphemes(text, ...sourceRange(reply, textEl, range));
  if (s16 >= e16 || !text.slice(s16, e16).trim()) return null;
  return {
    reply,
    start: toCodePoints(text, s16),
    end: toCodePoints(text, e16),
    exact: text.slice(s16, e16),
    rect: range.getBoundingClientRect(),
  };
}

function updateToolbar() {
  if (!config.canAnnotate) return;
  const found = selectionInReply();
  if (!found) {
    if (!toolbar.contains(document.activeElement)) toolbar.hidden = true;
    return;
  }
  pending = found;
  toolbar.hidden = false;
  const top = window.scrollY + found.rect.top - toolbar.offsetHeight - 6;
  toolbar.style.top = `${Math.max(window.scrollY, top)}px`;
  toolbar.style.left = `${window.scrollX + found.rect.left}px`;
}
document.addEventListener("selectionchange", () => requestAnimationFrame(updateToolbar));

toolbar.addEventListener("click", (ev) => {
  const btn = ev.target.closest("button[data-action]");
  if (!btn || !pending) return;
  openComposer(pending.reply, btn.dataset.action, pending);
});

// --- composer ----------------------------------------------------------------------------------------------------------

function closeComposer() {
  document.querySelectorAll("form.composer").forEach((f) => f.remove());
  layout();
}

/** Open the composer next to `reply`. mode: comment | tag | suggest. span: {start, end, exact} or null (whole). */
function openComposer(reply, mode, span, presetTag) {
  closeComposer();
  const form = composerTemplate.content.firstElementChild.cloneNode(true);
  const turnId = reply.dataset.turnId;
  form.setAttribute("hx-post", reply.dataset.annotateUrl);
  form.setAttribute("hx-target", `#cards-${turnId}`);
  form.querySelector("[name=kind]").value = mode === "suggest" ? "suggestion" : "comment";
  form.querySelector("[name=text_hash]").value = reply.dataset.textHash;
  const quote = form.querySelector(".composer-quote");
  if (span) {
    form.querySelector("[name=start]").value = span.start;
    form.querySelector("[name=end]").value = span.end;
    form.querySelector("[name=exact]").value = span.exact;
    quote.textContent = `“${span.exact.length > 140 ? span.exact.slice(0, 140) + "…" : span.exact}”`;
    form._anchorTop = (span.rect ? span.rect.top : reply.getBoundingClientRect().top) + window.scrollY;
  } else {
    quote.textContent = "On the whole reply";
    form._anchorTop = reply.getBoundingClientRect().top + window.scrollY;
  }
  const replacement = form.querySelector(".composer-replacement");
  if (mode === "suggest") {
    replacement.querySelector("textarea").value = span ? span.exact : "";
  } else {
    replacement.remove();
  }
  if (presetTag) {
    const box = form.querySelector(`input[name=tags][value="${presetTag.id}"]`);
    if (box) box.checked = true;
  }
  const aside = cardsOf(turnId);
  aside.prepend(form);
  htmx.process(form);
  resizeObserver.observe(form);
  toolbar.hidden = true;
  layout();
  const focusTarget =
    mode === "suggest" ? form.querySelector("[name=replacement]")
      : mode === "tag" ? form.querySelector("input[name=tags]")
        : form.querySelector("[name=body]");
  focusTarget.focus();
  form.addEventListener("click", (ev) => {
    if (ev.target.closest("[data-action=cancel]")) {
      closeComposer();
      reply.focus();
    }
  });
  form.addEventListener("htmx:afterRequest", (ev) => {
    const status = ev.detail.xhr?.status || 0;
    if (status >= 200 && status < 300 && ev.detail.elt === form) form.remove();
  });
  return form;
}

// --- cards: focus, highlight <-> card ----------------------------------------------------------------------------------

function activate(id, { focusCard = false, focusMark = false } = {}) {
  document.querySelectorAll(".is-active").forEach((el) => el.classList.remove("is-active"));
  const card = document.getElementById(`card-${id}`);
  const marks = document.querySelectorAll(`mark[data-annotation-id="${id}"]`);
  marks.forEach((m) => m.classList.add("is-active"));
  if (card) card.classList.add("is-active");
  if (focusCard && card) {
    card.focus({ preventScroll: true });
    card.scrollIntoView({ block: "nearest" });
  }
  if (focusMark && marks.length) {
    marks[0].setAttribute("tabindex", "-1");
    marks[0].focus({ preventScroll: true });
    marks[0].scrollIntoView({ block: "center" });
  }
}

review.addEventListener("click", (ev) => {
  const mark = ev.target.closest("mark.hl");
  if (mark && document.getSelection().isCollapsed) {
    // The innermost highlight wins when highlights overlap.
    activate(mark.dataset.annotationId, { focusCard: true });
    return;
  }
  const gotoBtn = ev.target.closest("[data-action=goto]");
  if (gotoBtn) {
    activate(gotoBtn.closest(".card").dataset.annotationId, { focusMark: true });
    return;
  }
  const viewToggle = ev.target.closest("[data-action=view]");
  if (viewToggle) {
    toggleView(viewToggle.closest(".reply"));
    return;
  }
  const whole = ev.target.closest("[data-action=whole]");
  if (whole) {
    openComposer(whole.closest(".reply"), "comment", null);
    return;
  }
  if (ev.target.closest("[data-action=shortcuts]")) shortcutsDialog.showModal();
});

review.addEventListener("focusin", (ev) => {
  const card = ev.target.closest?.(".card");
  if (card && !card.classList.contains("is-active")) activate(card.dataset.annotationId);
});

// --- htmx integration: errors in place, focus kept, highlights repainted -----------------------------------------------

document.body.addEventListener("htmx:beforeSwap", (ev) => {
  const status = ev.detail.xhr.status;
  if (status === 400 || status === 403 || status === 409) {
    const source = ev.detail.requestConfig?.elt || ev.target;
    const container = source.closest(".card, .composer, .correction") || source;
    const slot = container.querySelector(".errors");
    if (slot) {
      ev.detail.shouldSwap = true;
      ev.detail.isError = false;
      ev.detail.target = slot;
      ev.detail.swapOverride = "innerHTML";
    }
  }
});

let refocusId = null;
document.body.addEventListener("htmx:beforeRequest", (ev) => {
  const card = ev.target.closest?.(".card");
  refocusId = card ? card.id : null;
});

// Focus moves in afterSwap, in the same task as the swap: after the 20 ms settle delay the user may already have
// moved on (pressed j/k), and focus must not be pulled back from there. htmx wires up swapped-in content only when it
// settles, so a card that takes focus now is processed now: its shortcuts (a, r, e) must work at once.
document.body.addEventListener("htmx:afterSwap", (ev) => {
  const target = ev.detail.target;
  if (refocusId) {
    const card = document.getElementById(refocusId);
    // Only give focus back when the swap took it away.
    const lost = !document.activeElement || document.activeElement === document.body;
    if (card && lost) {
      htmx.process(card);
      card.focus({ preventScroll: true });
    }
    refocusId = null;
  }
  if (target && target.matches?.("aside.cards")) {
    // A new card was appended by the composer: focus it. Live updates may have brought the same card a moment
    // earlier; keep only the one just swapped in.
    const fresh = target.lastElementChild;
    if (fresh?.classList.contains("card")) {
      for (const twin of target.querySelectorAll(`#${CSS.escape(fresh.id)}`)) if (twin !== fresh) twin.remove();
      htmx.process(fresh);
      fresh.focus({ preventScroll: true });
      activate(fresh.dataset.annotationId);
    }
  }
});

document.body.addEventListener("htmx:afterSettle", () => {
  observeCards(document);
  document.querySelectorAll(".card").forEach(ensureAuthorOption);
  applyFiltersQuiet();
  repaint();
});

function applyFiltersQuiet() {
  const tag = filters.tag.value;
  const author = filters.author.value;
  const status = filters.status.value;
  if (!tag && !author && !status) return;
  for (const card of document.querySelectorAll(".card")) {
    const tags = card.dataset.tags.trim().split(/\s+/);
    card.hidden = !((!tag || tags.includes(tag)) && (!author || card.dataset.author === author) &&
      (!status || card.dataset.status === status));
  }
}

// --- live updates: poll a cheap "changes since" endpoint -----------------------------------------------------------

function busy(el) {
  // Do not replace what someone is typing in or has opened for editing.
  return el.contains(document.activeElement) && document.activeElement.matches("textarea, input, select") ||
    [...el.querySelectorAll("details[open].inline-edit")].length > 0 || el.querySelector("[data-conflict]");
}

async function poll() {
  if (document.hidden) return;
  let response;
  try {
    response = await fetch(`${config.changesUrl}?since=${encodeURIComponent(stamp)}`, {
      headers: { "HX-Request": "true" },
      credentials: "same-origin",
    });
  } catch {
    return; // offline for a moment: the next poll catches up
  }
  if (response.status !== 200) return;
  const tpl = document.createElement("template");
  tpl.innerHTML = await response.text();
  const root = tpl.content.firstElementChild;
  if (!root) return;
  const touched = new Set();
  for (const card of root.querySelectorAll(":scope > .card")) {
    const existing = document.getElementById(card.id);
    if (existing) {
      // A poll response can cross a newer local save: never replace a card with an older state of itself. The stamps
      // are UTC ISO 8601 from the server, so they order as strings.
      if (card.dataset.updated <= existing.dataset.updated || busy(existing)) continue;
      const wasFocused = existing.contains(document.activeElement);
      existing.replaceWith(card);
      if (wasFocused) card.focus({ preventScroll: true });
    } else if (card.dataset.deleted) {
      continue;
    } else {
      const home = card.dataset.anchor === "orphaned" ? document.getElementById("orphan-cards") : cardsOf(card.dataset.turn);
      if (!home) continue;
      home.append(card);
    }
    htmx.process(card);
    resizeObserver.observe(card);
    ensureAuthorOption(card);
    touched.add(card.dataset.turn);
  }
  for (const section of root.querySelectorAll(":scope > .correction")) {
    const existing = document.getElementById(section.id);
    if (existing && !busy(existing) && existing.outerHTML !== section.outerHTML) {
      existing.replaceWith(section);
      htmx.process(section);
    }
  }
  stamp = root.dataset.stamp || stamp;
  if (touched.size) {
    applyFiltersQuiet();
    repaint([...touched].map((id) => document.getElementById(`turn-${id}`)).filter(Boolean));
  }
}
setInterval(poll, 3000);

// --- keyboard ------------------------------------------------------------------------------------------------------

function typing(el) {
  return el && (el.matches("input, textarea, select") || el.isContentEditable);
}

function currentReply() {
  const el = document.activeElement;
  const reply = el?.closest?.(".reply");
  if (reply) return reply;
  const card = el?.closest?.(".card");
  return card ? document.getElementById(`turn-${card.dataset.turn}`) : null;
}

function moveReply(step) {
  const replies = [...document.querySelectorAll(".reply")].filter((r) => !r.closest(".turn-row")?.hidden);
  if (!replies.length) return;
  const current = currentReply();
  let index = current ? replies.indexOf(current) + step : step > 0 ? 0 : replies.length - 1;
  index = Math.max(0, Math.min(replies.length - 1, index));
  replies[index].focus({ preventScroll: true });
  replies[index].scrollIntoView({ block: "nearest" });
  // Keyboard selection (Shift+arrows) starts at the beginning of the reply just moved to.
  const first = document.createTreeWalker(replyText(replies[index]), NodeFilter.SHOW_TEXT).nextNode();
  if (first) document.getSelection().collapse(first, 0);
}

/** Keyboard selection inside the focused reply: Shift+arrows extend by character, Ctrl+Shift+arrows by word. */
function extendSelection(reply, ev) {
  const sel = document.getSelection();
  const textEl = replyText(reply);
  if (!sel.rangeCount || !textEl.contains(sel.anchorNode)) {
    const first = document.createTreeWalker(textEl, NodeFilter.SHOW_TEXT).nextNode();
    if (!first) return;
    sel.collapse(first, 0);
  }
  const forward = ev.key === "ArrowRight" || ev.key === "ArrowDown";
  const unit = ev.key === "ArrowUp" || ev.key === "ArrowDown" ? "line" : ev.ctrlKey ? "word" : "character";
  sel.modify("extend", forward ? "forward" : "backward", unit);
}

function decideShortcut(card, action) {
  const btn = card?.querySelector(`button[data-action="${action}"]`);
  if (btn) btn.click();
}

document.addEventListener("keydown", (ev) => {
  const target = ev.target;
  if (ev.key === "Escape") {
    if (document.querySelector("form.composer")) {
      const reply = currentReply() || pending?.reply;
      closeComposer();
      reply?.focus();
    }
    toolbar.hidden = true;
    return;
  }
  if (typing(target)) {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      const form = target.closest("form");
      if (form) {
        ev.preventDefault();
        form.requestSubmit();
      }
    }
    return;
  }
  if (shortcutsDialog.open) return;
  const reply = currentReply();
  if (ev.shiftKey && ev.key.startsWith("Arrow") && target.closest?.(".reply")) {
    ev.preventDefault();
    extendSelection(target.closest(".reply"), ev);
    return;
  }
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const card = target.closest?.(".card");
  const sel = selectionInReply();
  switch (ev.key) {
    case "j": moveReply(1); break;
    case "k": moveReply(-1); break;
    case "?": shortcutsDialog.showModal(); break;
    case "c":
      if (!config.canAnnotate) return;
      if (sel) openComposer(sel.reply, "comment", sel);
      else if (reply) openComposer(reply, "comment", null);
      else return;
      break;
    case "s":
      if (!config.canAnnotate || !sel) return;
      openComposer(sel.reply, "suggest", sel);
      break;
    case "a": decideShortcut(card, "accept"); break;
    case "r": decideShortcut(card, "reject"); break;
    case "e": decideShortcut(card, "resolve"); break;
    default: {
      const tag = tagByHotkey.get(ev.key);
      if (!tag || !config.canAnnotate || !(sel || reply)) return;
      // A selection outside any reply text must not turn into a tag on the whole reply.
      if (!sel && !document.getSelection().isCollapsed) return;
      const form = openComposer(sel ? sel.reply : reply, "tag", sel, tag);
      form.requestSubmit();
    }
  }
  ev.preventDefault();
});

// --- start -------------------------------------------------------------------------------------------------------------

observeCards(document);
window.addEventListener("resize", () => requestAnimationFrame(layout));
restoreViews();
feedbackFilterFromUrl();
repaint().then(() => {
  review.dataset.ready = "1";
});

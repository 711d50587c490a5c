// @-mentions in the review workspace: typing "@" and the start of a name in a comment or reply offers matching users
// in a listbox under the textarea (arrows move, Enter or Tab choose, Escape closes, the mouse works too), and a link
// to "#card-<id>" (an inbox item) scrolls to that card and focuses it once the workspace is laid out.
// A module loaded from 'self' (no inline script or style: the CSP forbids them); the users' URL comes from the
// header's inbox element.

const usersUrl = document.getElementById("inbox-nav")?.dataset.usersUrl;
const FIELD = "#review textarea[name=body]";
// As annotations/inbox/mentions.py: "@" not after a name character, then letters, digits and _ . + - (any script).
const TOKEN = /(^|[^\p{L}\p{N}_@.+-])@([\p{L}\p{N}_.+-]*)$/u;
let open = null; // {textarea, list, options, active, start, query}
let serial = 0;
let controller = null;
let timer = 0;

function close() {
  if (!open) return;
  const { textarea, list } = open;
  list.remove();
  textarea.setAttribute("aria-expanded", "false");
  textarea.removeAttribute("aria-activedescendant");
  open = null;
}

/** The "@name" being typed at the caret: {start, query} (start: the index of "@"), or null. */
function tokenAt(textarea) {
  if (textarea.selectionStart !== textarea.selectionEnd) return null;
  const before = textarea.value.slice(0, textarea.selectionStart);
  const m = TOKEN.exec(before);
  if (!m) return null;
  return { start: before.length - m[2].length - 1, query: m[2] };
}

function setActive(index) {
  open.active = index;
  open.options.forEach((li, i) => li.setAttribute("aria-selected", i === index ? "true" : "false"));
  const li = open.options[index];
  if (li) {
    open.textarea.setAttribute("aria-activedescendant", li.id);
    li.scrollIntoView({ block: "nearest" });
  }
}

function choose(index) {
  const li = open?.options[index];
  if (!li) return;
  const { textarea, start } = open;
  const caret = textarea.selectionStart;
  const insert = `@${li.dataset.username} `;
  textarea.setRangeText(insert, start, caret, "end");
  close();
  textarea.focus();
  textarea.dispatchEvent(new Event("input", { bubbles: true }));
}

function show(textarea, token, users) {
  close();
  if (!users.length) return;
  const id = `mention-list-${++serial}`;
  const list = document.createElement("ul");
  list.id = id;
  list.className = "mention-list";
  list.setAttribute("role", "listbox");
  list.setAttribute("aria-label", "Mention a user");
  const options = users.map((u, i) => {
    const li = document.createElement("li");
    li.id = `${id}-${i}`;
    li.setAttribute("role", "option");
    li.dataset.username = u.username;
    const name = document.createElement("span");
    name.className = "mention-username";
    name.textContent = `@${u.username}`;
    li.append(name);
    if (u.name) {
      const full = document.createElement("span");
      full.className = "mention-name";
      full.textContent = u.name;
      li.append(" ", full);
    }
    return li;
  });
  list.append(...options);
  textarea.after(list);
  textarea.setAttribute("aria-controls", id);
  textarea.setAttribute("aria-expanded", "true");
  open = { textarea, list, options, active: 0, start: token.start, query: token.query };
  setActive(0);
}

async function suggest(textarea) {
  const token = tokenAt(textarea);
  if (!token || !usersUrl) {
    close();
    return;
  }
  controller?.abort();
  controller = new AbortController();
  try {
    const response = await fetch(`${usersUrl}?${new URLSearchParams({ q: token.query })}`, {
      headers: { Accept: "application/json" },
      signal: controller.signal,
    });
    if (!response.ok) {
      close();
      return;
    }
    const data = await response.json();
    // Only if the caret is still on the same token (the answer may come after more typing).
    const now = tokenAt(textarea);
    if (document.activeElement === textarea && now && now.start === token.start && now.query === token.query) {
      show(textarea, token, data.users);
    }
  } catch (err) {
    if (err.name !== "AbortError") close();
  }
}

document.addEventListener("input", (ev) => {
  const textarea = ev.target;
  if (!textarea.matches?.(FIELD)) return;
  if (!textarea.hasAttribute("aria-autocomplete")) textarea.setAttribute("aria-autocomplete", "list");
  clearTimeout(timer);
  if (!tokenAt(textarea)) {
    close();
    return;
  }
  timer = setTimeout(() => suggest(textarea), 120);
});

// Capture phase: while the list is open its keys must not reach the workspace's shortcuts (Escape closes the list,
// not the composer; Enter chooses, it does not start a new line).
document.addEventListener(
  "keydown",
  (ev) => {
    if (!open || ev.target !== open.textarea) return;
    const n = open.options.length;
    if (ev.key === "ArrowDown") setActive((open.active + 1) % n);
    else if (ev.key === "ArrowUp") setActive((open.active - 1 + n) % n);
    else if ((ev.key === "Enter" && !ev.ctrlKey && !ev.metaKey && !ev.shiftKey) || ev.key === "Tab") choose(open.active);
    else if (ev.key === "Escape") close();
    else return;
    ev.preventDefault();
    ev.stopPropagation();
  },
  true,
);

document.addEventListener("mousedown", (ev) => {
  const li = ev.target.closest?.(".mention-list [role=option]");
  if (!li || !open) return;
  ev.preventDefault(); // keep the focus in the textarea
  choose(open.options.indexOf(li));
});

document.addEventListener("focusout", (ev) => {
  if (open && ev.target === open.textarea) close();
});

// --- the header's count: its polls are none of the workspace's business -------------------------------------------------

// The workspace reacts to every htmx request and swap on the page (focus kept, highlights repainted); the header's
// poll must not set that off, nor take the place of a card's request in flight. Its events stop at the header.
const headerSlot = document.getElementById("inbox-nav")?.parentElement;
for (const type of ["htmx:beforeRequest", "htmx:beforeSwap", "htmx:afterSwap", "htmx:afterSettle"]) {
  headerSlot?.addEventListener(type, (ev) => ev.stopPropagation());
}

// --- "#card-<id>": open the card an inbox item points at -------------------------------------------------------------

function focusLinkedCard() {
  const m = /^#card-(\d+)$/.exec(window.location.hash);
  const card = m && document.getElementById(`card-${m[1]}`);
  if (!card) return;
  card.focus({ preventScroll: true });
  card.scrollIntoView({ block: "center" });
}

const review = document.getElementById("review");
if (review) {
  if (review.dataset.ready === "1") focusLinkedCard();
  else {
    // The cards are positioned once the highlights are painted; the review script marks that with data-ready.
    const observer = new MutationObserver(() => {
      if (review.dataset.ready !== "1") return;
      observer.disconnect();
      focusLinkedCard();
    });
    observer.observe(review, { attributes: true, attributeFilter: ["data-ready"] });
  }
  window.addEventListener("hashchange", focusLinkedCard);
}

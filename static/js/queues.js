// Review queue work bar: the item's reply is marked and focused (so Shift+arrows select in it at once), and keys
// drive the queue: Shift+R the rubric, Shift+N complete and next, Shift+X skip, Shift+G back to the reply.
const bar = document.getElementById("queue-bar");
const form = document.getElementById("rubric-form");
const turnId = bar?.dataset.turn;

function reply() {
  return document.getElementById(`turn-${turnId}`);
}

function focusReply() {
  const el = reply();
  if (!el) return;
  el.closest(".turn-row")?.classList.add("queue-target");
  el.focus({ preventScroll: true });
  el.scrollIntoView({ block: "start" });
  const text = el.querySelector("[data-reply-text]:not([hidden]), [data-reply-md]:not([hidden])");
  const first = text && document.createTreeWalker(text, NodeFilter.SHOW_TEXT).nextNode();
  if (first) document.getSelection().collapse(first, 0);
}

function typing(el) {
  return el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));
}

function whenReady() {
  const review = document.getElementById("review");
  if (review?.dataset.ready === "1") {
    focusReply();
    return;
  }
  requestAnimationFrame(whenReady);
}

if (bar) {
  whenReady();
  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target) || document.querySelector("dialog[open]")) return;
    if (ev.key === "N") form.requestSubmit();
    else if (ev.key === "X") document.getElementById("skip-form").requestSubmit();
    else if (ev.key === "R") form.querySelector("input:not([type=hidden]), select")?.focus();
    else if (ev.key === "G") focusReply();
    else return;
    ev.preventDefault();
  });
}

"""A seeded generator of realistic demo conversations, written as native FeedbackHub JSONL.

The set covers several product domains (``scenarios``: a bank's customer support, an internal HR assistant, a
coding helper, a travel booking bot, an online shop's returns desk), several model and app versions, the three
environments, several end-user roles, multi-turn conversations with system prompts, retrieved documents with scores,
tool calls, latencies, token counts and confidence, and every kind of end-user feedback, including negative feedback
with reasons, free text and corrections.

Everything is drawn from ``random.Random(seed)`` and from a fixed base date: the same seed always gives
byte-identical JSONL. Conversation ids are ``demo-0001``..., so seeding again (any seed) updates the demo set in
place instead of adding to it; the import pipeline keeps it idempotent.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable, Iterator
from typing import IO, Any

from feedbackhub.demo.scenarios import Doc, Domain, Scenario, demo_set
from sessions.models import FeedbackKind

DEFAULT_COUNT = 300
DEFAULT_SEED = 2026


def _weighted(rng: random.Random, pairs: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([v for v, _ in pairs], weights=[w for _, w in pairs])[0]


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _filler(slots: dict[str, str]) -> Callable[[str], str]:
    def fill(text: str) -> str:
        return text.format(**slots)

    return fill


def _fill_obj(value: Any, fill: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fill(value)
    if isinstance(value, dict):
        return {k: _fill_obj(v, fill) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_fill_obj(v, fill) for v in value]
    return value


def _tokens(*texts: str) -> int:
    # Roughly four characters per token, as a tokenizer would count English prose.
    return max(1, sum(len(t) for t in texts) // 4)


class _Builder:
    """Builds one conversation: turns are appended in order, with timestamps that move forward."""

    def __init__(self, rng: random.Random, conv_id: str, domain: Domain, model_version: str, start: dt.datetime):
        self.rng = rng
        self.conv_id = conv_id
        self.domain = domain
        self.model_version = model_version
        self.clock = start
        self.turns: list[dict] = []
        self.history_chars = len(domain.system_prompt)

    def _tick(self, low: float, high: float) -> dt.datetime:
        self.clock += dt.timedelta(seconds=round(self.rng.uniform(low, high), 3))
        return self.clock

    def user(self, text: str) -> dict:
        turn = {"role": "user", "content": text, "created_at": _iso(self._tick(4, 90))}
        self.turns.append(turn)
        self.history_chars += len(text)
        return turn

    def assistant(self, text: str, *, weak: bool, docs: tuple[Doc, ...] = (), tool: dict | None = None) -> dict:
        rng = self.rng
        latency = int(rng.lognormvariate(7.3, 0.45)) + (900 if tool else 0) + (250 * len(docs))
        self._tick(latency / 1000, latency / 1000 + 0.5)
        context: dict[str, Any] = {"system_prompt": self.domain.system_prompt}
        if docs:
            scores = sorted((round(rng.uniform(0.55, 0.93), 3) for _ in docs), reverse=True)
            context["retrieved_documents"] = [
                {"id": d.id, "score": s, "title": d.title, "text": d.text} for d, s in zip(docs, scores, strict=True)
            ]
        if tool:
            context["tool_calls"] = [tool]
        doc_chars = sum(len(d.text) + len(d.title) for d in docs)
        confidence = rng.uniform(0.32, 0.66) if weak else rng.uniform(0.71, 0.98)
        turn = {
            "role": "assistant",
            "content": text,
            "created_at": _iso(self.clock),
            "latency_ms": latency,
            "usage": {"prompt_tokens": _tokens("x" * (self.history_chars + doc_chars)),
                      "completion_tokens": _tokens(text)},
            "model_version": self.model_version,
            "confidence": round(confidence, 3),
            "context": context,
            "feedback": [],
        }
        self.turns.append(turn)
        self.history_chars += len(text)
        return turn

    def feedback(self, turn: dict, kind: str, **values: Any) -> None:
        n = len(turn["feedback"])
        position = self.turns.index(turn)
        event: dict[str, Any] = {
            "id": f"{self.conv_id}-t{position}-f{n}",
            "type": kind,
            "created_at": _iso(self.clock + dt.timedelta(seconds=round(self.rng.uniform(2, 40), 3))),
        }
        # Only the fields this kind of event carries, as a real client would log them.
        event.update({k: v for k, v in values.items() if v not in (None, "", [])})
        turn["feedback"].append(event)


def _negative_feedback(b: _Builder, turn: dict, sc: Scenario, fill: Callable[[str], str], forced: str | None) -> str:
    """Attach negative feedback to a weak answer; return what the user does next ('rephrase', 'regenerate'...)."""
    rng = b.rng
    kinds = [FeedbackKind.THUMBS_DOWN, FeedbackKind.CATEGORY, FeedbackKind.COMMENT, FeedbackKind.CORRECTION,
             FeedbackKind.RATING]
    chosen = {forced} if forced in kinds else set(rng.sample(kinds, rng.randint(1, 3)))
    categories = sorted(rng.sample(sc.problems, rng.randint(1, len(sc.problems))))
    for kind in kinds:
        if kind not in chosen:
            continue
        if kind == FeedbackKind.THUMBS_DOWN:
            b.feedback(turn, kind, categories=categories if rng.random() < 0.6 else [],
                       text=fill(rng.choice(sc.complaints)) if rng.random() < 0.4 else "")
        elif kind == FeedbackKind.CATEGORY:
            b.feedback(turn, kind, categories=categories)
        elif kind == FeedbackKind.COMMENT:
            b.feedback(turn, kind, text=fill(rng.choice(sc.complaints)))
        elif kind == FeedbackKind.CORRECTION:
            b.feedback(turn, kind, correction=fill(sc.correction),
                       text="This is what it should have said." if rng.random() < 0.3 else "")
        elif kind == FeedbackKind.RATING:
            b.feedback(turn, kind, rating=rng.randint(1, 2), categories=categories[:1])
    if forced in {FeedbackKind.REPHRASE, FeedbackKind.REGENERATE, FeedbackKind.ABANDON}:
        return forced
    return rng.choices(["rephrase", "regenerate", "abandon", "continue"], weights=[4, 3, 2, 3])[0]


def _positive_feedback(b: _Builder, turn: dict, sc: Scenario, fill: Callable[[str], str], forced: str | None) -> None:
    rng = b.rng
    roll = rng.random()
    if forced == FeedbackKind.THUMBS_UP or (forced is None and roll < 0.22):
        b.feedback(turn, FeedbackKind.THUMBS_UP, text=fill(rng.choice(sc.praise)) if rng.random() < 0.2 else "")
    elif forced == FeedbackKind.RATING or (forced is None and roll < 0.34):
        b.feedback(turn, FeedbackKind.RATING, rating=rng.choice((4, 5, 5)))
    elif forced == FeedbackKind.COPY or (forced is None and roll < 0.46):
        b.feedback(turn, FeedbackKind.COPY)
    elif forced == FeedbackKind.COMMENT:
        b.feedback(turn, FeedbackKind.COMMENT, text=fill(rng.choice(sc.praise)))


def _conversation(rng: random.Random, index: int, forced: str | None) -> dict:
    demo = demo_set()
    domain = rng.choices(demo.domains, weights=demo.weights)[0]
    sc = rng.choice(domain.scenarios)
    slots = {name: rng.choice(values) for name, values in domain.slots.items()}
    fill = _filler(slots)
    conv_id = f"demo-{index:04d}"
    model_version = rng.choice(domain.model_versions)
    start = demo.base_date + dt.timedelta(days=rng.randint(0, 119), seconds=rng.randint(0, 50_400))
    b = _Builder(rng, conv_id, domain, model_version, start)

    negative_kinds = {FeedbackKind.THUMBS_DOWN, FeedbackKind.CATEGORY, FeedbackKind.CORRECTION,
                      FeedbackKind.REPHRASE, FeedbackKind.REGENERATE, FeedbackKind.ABANDON}
    weak = forced in negative_kinds or (forced is None and rng.random() < 0.3)
    tool = _fill_obj({"id": f"call_{rng.getrandbits(40):010x}", "name": sc.tool.name,
                      "arguments": sc.tool.arguments, "result": sc.tool.result}, fill) if sc.tool else None
    docs = tuple(rng.sample(sc.docs, rng.randint(1, len(sc.docs)))) if sc.docs else ()
    if docs:
        docs = tuple(Doc(d.id, d.title, fill(d.text)) for d in docs)

    b.user(fill(rng.choice(sc.openers)))
    first = b.assistant(fill(sc.weak if weak else sc.good), weak=weak, docs=docs, tool=tool)
    abandoned = False
    if weak:
        next_step = _negative_feedback(b, first, sc, fill, forced)
        if next_step == "rephrase":
            b.feedback(first, FeedbackKind.REPHRASE)
            b.user(fill(sc.rephrase))
            answer = b.assistant(fill(sc.good), weak=False, docs=docs, tool=tool)
            _positive_feedback(b, answer, sc, fill, None)
        elif next_step == "regenerate":
            b.feedback(first, FeedbackKind.REGENERATE)
            # The regenerated answer is logged as a new assistant turn answering the same question.
            answer = b.assistant(fill(sc.good), weak=False, docs=docs, tool=tool)
            _positive_feedback(b, answer, sc, fill, None)
        elif next_step == "abandon":
            b.feedback(first, FeedbackKind.ABANDON)
            abandoned = True
    else:
        _positive_feedback(b, first, sc, fill, forced)

    if not abandoned:
        for question, answer_text in sc.followups:
            if rng.random() < 0.55:
                b.user(fill(question))
                reply = b.assistant(fill(answer_text), weak=False, docs=docs[:1])
                _positive_feedback(b, reply, sc, fill, None)
        if domain.closings and rng.random() < 0.4:
            question, answer_text = rng.choice(domain.closings)
            b.user(fill(question))
            b.assistant(fill(answer_text), weak=False)

    user_role = _weighted(rng, domain.roles)
    return {
        "id": conv_id,
        "user": {"id": f"u-{rng.getrandbits(32):08x}", "role": user_role},
        "environment": _weighted(rng, demo.environments),
        "model_version": model_version,
        "app_version": rng.choice(domain.app_versions),
        "started_at": _iso(start),
        "ended_at": _iso(b.clock + dt.timedelta(seconds=rng.randint(5, 120))),
        "metadata": {
            "domain": domain.key,
            "product": domain.product,
            "topic": sc.topic,
            "channel": rng.choice(domain.channels),
            "locale": rng.choice(("en-GB", "en-US", "en-IE", "en-IN")),
        },
        "turns": b.turns,
    }


def generate(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> Iterator[dict]:
    """Yield ``count`` native-format conversation records, the same ones for the same ``seed``.

    The first conversations each force one feedback kind, so every kind appears even in a small set.
    """
    rng = random.Random(seed)  # noqa: S311  (reproducible demo data, not security)
    forced_kinds = list(FeedbackKind)
    for index in range(1, count + 1):
        forced = forced_kinds[index - 1] if index <= len(forced_kinds) else None
        yield _conversation(rng, index, forced)


def write_jsonl(out: IO[str], *, count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> int:
    """Write the demo set as native JSONL to ``out``; return the number of conversations written."""
    written = 0
    for record in generate(count, seed):
        out.write(json.dumps(record, ensure_ascii=False, sort_keys=True))
        out.write("\n")
        written += 1
    return written

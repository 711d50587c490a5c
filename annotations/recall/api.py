"""The recall API for the LLM app: ``POST /api/v1/recall`` (token scope ``recall``), see docs/recall.md.

The body names a user input and optional filters; the answer holds the nearest resolved past cases that have an
approved correction, as ``{"input", "output"}`` few-shot examples ranked by similarity, and the guidance notes
attached to them (correction rationales, resolved reviewer comments, and whatever ``GUIDANCE_PROVIDERS`` add).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from annotations.recall import querying, selectors
from annotations.recall.cases import Case
from annotations.selectors import all_tags
from feedbackhub.auth_tokens import json_error, token_required
from feedbackhub.models import ApiScope
from sessions.models import TurnRole

MAX_K = 20
DEFAULT_K = 5
MAX_INPUT_CHARS = 8000
#: Candidates read per example asked for: several items can share one reply, and not every resolved case has an
#: approved correction to show.
CANDIDATES_PER_EXAMPLE = 4
FILTER_TEXT_FIELDS = ("environment", "model_version", "user_role")
FILTER_FIELDS = (*FILTER_TEXT_FIELDS, "tags", "since", "until")
TOP_FIELDS = ("input", "k", "filters")

#: Callables ``(examples: list[Case], candidates: list[Case]) -> list[dict]`` adding guidance notes (dicts with at
#: least "kind" and "text"), e.g. the triage app's cluster guidance. Register from an AppConfig.ready().
GUIDANCE_PROVIDERS: list[Callable[[list[Case], list[Case]], list[dict[str, Any]]]] = []


class BadRequest(Exception):
    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


@dataclass
class RecallRequest:
    input: str
    k: int
    filters: selectors.RecallFilters


def _text(value: Any, field: str, *, max_length: int = 255) -> str:
    if not isinstance(value, str):
        raise BadRequest(field, f"{field}: expected a string, got {type(value).__name__}.")
    if len(value) > max_length:
        raise BadRequest(field, f"{field}: at most {max_length} characters.")
    return value.strip()


def _day(value: Any, field: str) -> dt.date:
    """An ISO 8601 date, or a date-time (its day in TIME_ZONE); the recall filters work by whole days."""
    text = _text(value, field, max_length=40)
    try:
        moment = parse_datetime(text)
        day = parse_date(text) if moment is None else None
    except ValueError:
        moment = day = None
    if moment is not None:
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        day = timezone.localtime(moment).date()
    if day is None:
        raise BadRequest(field, f"{field}: {text!r} is not an ISO 8601 date (2026-01-31) or date-time.")
    return day


def clear_caches() -> None:
    """Forget this process's cached active model name (tests call it between cases)."""
    selectors.clear_caches()


def _tag_ids(value: Any) -> list[int]:
    if not isinstance(value, list):
        raise BadRequest("filters.tags", "filters.tags: expected a list of tag slugs or names.")
    names = [_text(v, f"filters.tags[{i}]", max_length=80) for i, v in enumerate(value)]
    if not names:
        return []
    found: dict[str, int] = {}
    for tag in all_tags():  # the cached taxonomy: no query on the hot path
        found[tag.slug.lower()] = tag.pk
        found[tag.name.lower()] = tag.pk
    ids = []
    for i, name in enumerate(names):
        if name.lower() not in found:
            raise BadRequest(f"filters.tags[{i}]", f"filters.tags[{i}]: no tag with the slug or name {name!r}.")
        ids.append(found[name.lower()])
    return sorted(set(ids))


def parse_request(body: bytes) -> RecallRequest:
    """The validated request; ``BadRequest`` names the first field that is wrong."""
    try:
        data = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(None, f"The body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise BadRequest(None, "The body must be a JSON object such as {\"input\": \"...\"}.")
    unknown = sorted(set(data) - set(TOP_FIELDS))
    if unknown:
        raise BadRequest(unknown[0], f"{unknown[0]}: unknown field; expected {', '.join(TOP_FIELDS)}.")
    if "input" not in data:
        raise BadRequest("input", "input: required (the end user's message to find similar cases for).")
    text = _text(data["input"], "input", max_length=MAX_INPUT_CHARS)
    if not text:
        raise BadRequest("input", "input: must not be empty.")
    k = data.get("k", DEFAULT_K)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise BadRequest("k", f"k: expected a whole number from 1 to {MAX_K}.")
    raw = data.get("filters")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise BadRequest("filters", "filters: expected an object.")
    unknown = sorted(set(raw) - set(FILTER_FIELDS))
    if unknown:
        field = f"filters.{unknown[0]}"
        raise BadRequest(field, f"{field}: unknown filter; expected {', '.join(FILTER_FIELDS)}.")
    values = {name: _text(raw[name], f"filters.{name}") for name in FILTER_TEXT_FIELDS if raw.get(name) is not None}
    since = _day(raw["since"], "filters.since") if raw.get("since") else None
    until = _day(raw["until"], "filters.until") if raw.get("until") else None
    if since and until and since > until:
        raise BadRequest("filters.until", "filters.until: is before filters.since.")
    tag_ids = _tag_ids(raw["tags"]) if raw.get("tags") is not None else []
    filters = selectors.RecallFilters(
        **values, tag_ids=tag_ids, date_from=since, date_to=until, resolved_only=True
    )
    return RecallRequest(input=text, k=k, filters=filters)


def _guidance(examples: list[Case], candidates: list[Case]) -> list[dict[str, Any]]:
    """Notes attached to the examples: each approved correction's rationale, and the text of resolved reviewer
    comments on the same replies or ranked among them."""
    notes: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(kind: str, text: str, case: Case) -> None:
        text = text.strip()
        if text and text not in seen:
            seen.add(text)
            notes.append({"kind": kind, "text": text, "similarity": round(case.similarity, 4),
                          "conversation_id": case.item.conversation_id, "turn_id": case.item.turn_id})

    for case in examples:
        add("correction_rationale", case.correction_rationale, case)
    example_turns = {c.item.turn_id for c in examples}
    last = examples[-1].similarity if examples else 1.0
    for case in candidates:
        if case.annotation_status == "resolved" and (case.item.turn_id in example_turns or case.similarity >= last):
            add("resolved_comment", case.annotation_body, case)
    for provider in GUIDANCE_PROVIDERS:
        notes.extend(provider(examples, candidates))
    return notes


def _case(row: selectors.RecallRow) -> Case:
    """A Case from a plain row of ``selectors.recall_rows`` (the same fields ``cases_for`` fills from models)."""
    case = Case(item=row.item, similarity=row.similarity, extra={"tag_names": row.tag_names})
    if row.turn_role == TurnRole.USER:
        case.user_input = row.turn_content
    else:
        case.user_input, case.reply = row.previous_user_input, row.turn_content
    if row.correction_status is not None:
        case.correction_text = row.correction_text or ""
        case.correction_status = row.correction_status
        case.correction_rationale = row.correction_rationale or ""
    if row.item.annotation_id is not None:
        case.annotation_id = row.item.annotation_id
        case.annotation_body = row.annotation_body or ""
        case.annotation_quote = row.annotation_quote or ""
        case.annotation_status = row.annotation_status or ""
    return case


def recall_answer(request: RecallRequest, *, absolute: Callable[[str], str] = str) -> dict[str, Any]:
    # One query reads the nearest items with everything shown of them (no model instances on this path).
    model, rows = querying.recall_query(
        text=request.input, k=min(request.k * CANDIDATES_PER_EXAMPLE, selectors.MAX_K), filters=request.filters
    )
    candidates = [_case(row) for row in rows]
    examples: list[Case] = []
    turns: set[int] = set()
    for case in candidates:  # best first; one example per reply
        if case.item.turn_id in turns or case.correction_status != "approved" or not case.user_input:
            continue
        turns.add(case.item.turn_id)
        examples.append(case)
        if len(examples) == request.k:
            break
    return {
        "model": model,
        "examples": [
            {
                "input": case.user_input,
                "output": case.correction_text,
                "similarity": round(case.similarity, 4),
                "conversation_id": case.item.conversation_id,
                "turn_id": case.item.turn_id,
                "tags": case.extra["tag_names"],
                "url": absolute(case.url),
            }
            for case in examples
        ],
        "guidance": _guidance(examples, candidates),
    }


@token_required(ApiScope.RECALL)
def recall(request: HttpRequest) -> JsonResponse:
    """POST /api/v1/recall: few-shot examples and guidance for an end user's input."""
    if request.method != "POST":
        response = json_error(405, "method_not_allowed", "Use POST with a JSON body.")
        response["Allow"] = "POST"
        return response
    try:
        parsed = parse_request(request.body)
    except BadRequest as exc:
        return json_error(400, "invalid_request", exc.message, field=exc.field)
    return JsonResponse(recall_answer(parsed, absolute=request.build_absolute_uri))

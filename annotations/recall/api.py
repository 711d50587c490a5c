"""The recall API for the LLM app: ``POST /api/v1/recall`` (token scope ``recall``), see docs/recall.md.

The body names a user input and optional filters; the answer holds the nearest resolved past cases that have an
approved correction, as ``{"input", "output"}`` few-shot examples ranked by similarity, and the guidance notes
attached to them (correction rationales, resolved reviewer comments, and whatever ``GUIDANCE_PROVIDERS`` add).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, JsonResponse

from annotations.recall import api_forms, querying, selectors
from annotations.recall.cases import Case
from feedbackhub.auth_tokens import json_error, token_required
from feedbackhub.models import ApiScope
from sessions.models import TurnRole

#: Candidates read per example asked for: several items can share one reply, and not every resolved case has an
#: approved correction to show.
CANDIDATES_PER_EXAMPLE = 4

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


def clear_caches() -> None:
    """Forget this process's cached active model name (tests call it between cases)."""
    selectors.clear_caches()


def parse_request(body: bytes) -> RecallRequest:
    """The validated request; ``BadRequest`` names the first field that is wrong."""
    try:
        data = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(None, f"The body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise BadRequest(None, "The body must be a JSON object such as {\"input\": \"...\"}.")
    form = api_forms.RecallRequestForm(data)
    if not form.is_valid():
        raise BadRequest(*api_forms.first_error(form))
    filters_form = api_forms.RecallFiltersForm(form.cleaned_data["filters"])
    if not filters_form.is_valid():
        raise BadRequest(*api_forms.first_error(filters_form, prefix="filters."))
    raw = filters_form.cleaned_data
    filters = selectors.RecallFilters(
        **{name: raw[name] for name in api_forms.FILTER_TEXT_FIELDS if raw[name]},
        tag_ids=raw["tags"], date_from=raw["since"], date_to=raw["until"], resolved_only=True,
    )
    return RecallRequest(input=form.cleaned_data["input"], k=form.cleaned_data["k"], filters=filters)


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

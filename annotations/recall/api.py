"""The recall API for the LLM app: ``POST /api/v1/recall`` (token scope ``recall``), see docs/recall.md.

The body names a user input and optional filters; the answer holds the nearest resolved past cases that pass the
token's gate, as ``{"input", "output"}`` few-shot examples ranked by similarity, and the guidance notes attached to
them (correction rationales, resolved reviewer comments, and whatever ``GUIDANCE_PROVIDERS`` add).

Three things stand between the data and a production prompt. Scope: a token sees only the cases of its sources
(``Conversation.source``) unless it holds the all-sources grant. Floor: cases less similar than ``min_similarity``
(default RECALL_MIN_SIMILARITY) are dropped before anything is picked, so an unrelated question gets an empty
answer and no guidance. Gate: the token's ``gate`` decides which cases may be examples (approved corrections,
four-eyes approvals, or the frozen rows of a released dataset version). Guidance comes only from cases that passed
scope and floor, and every text in the answer goes through the scrubber (``feedbackhub.scrubbing``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse

from annotations.curation import selectors as curation_selectors
from annotations.recall import api_forms, querying, selectors
from annotations.recall.cases import Case
from feedbackhub.auth_tokens import json_error, token_required
from feedbackhub.models import ApiScope, ApiToken, RecallGate
from feedbackhub.scrubbing import ScrubTally
from sessions.models import TurnRole

#: The similarity floor when the request names none (docs/recall.md has the measurements behind it).
DEFAULT_MIN_SIMILARITY = 0.35

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
    min_similarity: float = 0.0


def default_min_similarity() -> float:
    return float(getattr(settings, "RECALL_MIN_SIMILARITY", DEFAULT_MIN_SIMILARITY))


def _scoped_sources(token: ApiToken | None, asked: list[str] | None) -> list[str] | None:
    """The conversation sources a search may read: what the request asks for, within what the token may see
    (None: any source). ``BadRequest`` for a source outside the token's."""
    if token is None or token.all_sources:
        return asked
    allowed = list(token.sources)
    if asked is None:
        return allowed
    outside = [s for s in asked if s not in allowed]
    if outside:
        raise BadRequest("filters.source", f"filters.source: this token does not see the source {outside[0]!r}.")
    return asked


def clear_caches() -> None:
    """Forget this process's cached active model name (tests call it between cases)."""
    selectors.clear_caches()


def parse_request(body: bytes, token: ApiToken | None = None) -> RecallRequest:
    """The validated request, scoped to what ``token`` may see (None: no scope, for in-process callers);
    ``BadRequest`` names the first field that is wrong."""
    try:
        data = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(None, f"The body is not valid JSON: {exc}.") from None
    except RecursionError:
        raise BadRequest(None, "The body is nested too deeply.") from None
    if not isinstance(data, dict):
        raise BadRequest(None, "The body must be a JSON object such as {\"input\": \"...\"}.")
    form = api_forms.RecallRequestForm(data, min_similarity=default_min_similarity())
    if not form.is_valid():
        raise BadRequest(*api_forms.first_error(form))
    filters_form = api_forms.RecallFiltersForm(form.cleaned_data["filters"])
    if not filters_form.is_valid():
        raise BadRequest(*api_forms.first_error(filters_form, prefix="filters."))
    raw = filters_form.cleaned_data
    filters = selectors.RecallFilters(
        **{name: raw[name] for name in api_forms.FILTER_TEXT_FIELDS if raw[name]},
        tag_ids=raw["tags"], date_from=raw["since"], date_to=raw["until"], resolved_only=True,
        conversation_sources=_scoped_sources(token, raw["source"]),
    )
    return RecallRequest(input=form.cleaned_data["input"], k=form.cleaned_data["k"], filters=filters,
                         min_similarity=form.cleaned_data["min_similarity"])


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


@dataclass(frozen=True)
class Gate:
    """What may be an example: ``kind`` is a RecallGate value; ``released`` holds the frozen rows under the
    dataset gate (None there when the dataset or version does not exist: nothing may be returned)."""

    kind: str
    label: str
    released: curation_selectors.ReleasedVersion | None = None


def gate_of(token: ApiToken | None) -> Gate:
    """The gate of ``token``; no token (an in-process caller) gets the four-eyes gate."""
    if token is None:
        return Gate(RecallGate.FOUR_EYES, RecallGate.FOUR_EYES)
    if token.gate != RecallGate.DATASET:
        return Gate(token.gate, token.gate_label)
    released = curation_selectors.released_version(dataset_name=token.gate_dataset,
                                                   number=token.gate_dataset_version)
    label = f"dataset:{token.gate_dataset}@{released.number if released else token.gate_dataset_version or 'latest'}"
    return Gate(RecallGate.DATASET, label, released)


def _passes(case: Case, row: selectors.RecallRow, gate: Gate) -> bool:
    if gate.kind == RecallGate.DATASET:
        return gate.released is not None and case.item.turn_id in gate.released.by_turn
    if case.correction_status != "approved" or not case.user_input:
        return False
    return gate.kind == RecallGate.APPROVED or row.correction_four_eyes


def recall_answer(
    request: RecallRequest, *, gate: Gate | None = None, absolute: Callable[[str], str] = str
) -> dict[str, Any]:
    gate = gate or gate_of(None)
    filters = request.filters
    if gate.kind == RecallGate.DATASET:
        # Only the released version's replies, resolved or not now: the frozen text is what is returned.
        turn_ids = list(gate.released.by_turn) if gate.released else []
        filters = replace(filters, turn_ids=turn_ids, resolved_only=False)
    # One query reads the nearest items with everything shown of them (no model instances on this path).
    model, rows = querying.recall_query(
        text=request.input, k=min(request.k * CANDIDATES_PER_EXAMPLE, selectors.MAX_K), filters=filters
    )
    # The floor applies before anything is picked: examples and guidance come only from cases above it.
    rows = [row for row in rows if row.similarity >= request.min_similarity]
    candidates = [_case(row) for row in rows]
    examples: list[Case] = []
    turns: set[int] = set()
    for case, row in zip(candidates, rows, strict=True):  # best first; one example per reply
        if case.item.turn_id in turns or not _passes(case, row, gate):
            continue
        if gate.released is not None:
            frozen = gate.released.by_turn[case.item.turn_id]
            case.user_input, case.correction_text = frozen.input, frozen.output
            case.correction_rationale = frozen.rationale
        turns.add(case.item.turn_id)
        examples.append(case)
        if len(examples) == request.k:
            break
    tally = ScrubTally()
    guidance = _guidance(examples, candidates)
    for note in guidance:
        note["text"] = tally.scrub(note["text"])
    return {
        "model": model,
        "gate": gate.label,
        "min_similarity": request.min_similarity,
        "examples": [
            {
                "input": tally.scrub(case.user_input),
                "output": tally.scrub(case.correction_text),
                "similarity": round(case.similarity, 4),
                "conversation_id": case.item.conversation_id,
                "turn_id": case.item.turn_id,
                "tags": case.extra["tag_names"],
                "url": absolute(case.url),
            }
            for case in examples
        ],
        "guidance": guidance,
        "scrubbed": tally.as_dict(),
    }


@token_required(ApiScope.RECALL)
def recall(request: HttpRequest) -> JsonResponse:
    """POST /api/v1/recall: few-shot examples and guidance for an end user's input."""
    if request.method != "POST":
        response = json_error(405, "method_not_allowed", "Use POST with a JSON body.")
        response["Allow"] = "POST"
        return response
    try:
        body = request.body
    except RequestDataTooBig:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return json_error(413, "body_too_large", f"The body is larger than {limit} bytes.", field=None)
    token = request.api_token  # type: ignore[attr-defined]
    try:
        parsed = parse_request(body, token)
    except BadRequest as exc:
        return json_error(400, "invalid_request", exc.message, field=exc.field)
    return JsonResponse(recall_answer(parsed, gate=gate_of(token), absolute=request.build_absolute_uri))

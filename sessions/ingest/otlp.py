"""OTLP traces in, conversations out: OpenTelemetry GenAI spans grouped into conversations and stored.

Spans group into conversations by ``gen_ai.conversation.id``, else ``session.id`` (on the span or an ancestor in the
same export), else their trace id; a span without one joins the conversation its trace belongs to (remembered in the
cache for an hour: exporters send children before their parents). Spans of one conversation arrive over many
exports: spans already stored (by span id) add nothing. New turns that come after the conversation's last stored turn
are appended (only they are written, :func:`sessions.ingest.services.conversations_append`); a span that belongs
earlier rebuilds the conversation in time order through the import merge
(:func:`sessions.ingest.services.conversations_ingest`). Each export holds transaction-scoped locks on its
conversations' keys, so two exports extending one conversation take turns. The wire format is in
:mod:`sessions.ingest.otlp_wire`, the span mapping in :mod:`sessions.ingest.genai`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import TextField
from django.db.models.functions import Cast

from sessions.ingest import genai, services
from sessions.ingest import sql as ingest_sql
from sessions.ingest.otlp_wire import ExportResult, Span
from sessions.models import Conversation, Environment, Turn

#: How long the receiver remembers which conversation a trace belongs to (for spans that do not name it).
TRACE_MEMORY_SECONDS = 3600


def _trace_key(source: str, trace_id: str) -> str:
    return f"otlp:trace:{source}:{trace_id}"


def _source_of(span: Span, default_source: str | None) -> str | None:
    if default_source:
        return default_source
    name = span.resource.get("service.name")
    return str(name)[:100] if isinstance(name, str) and name else None


_TURN_FIELDS = (
    "role", "content", "created_at", "latency_ms", "confidence", "model_version", "prompt_tokens",
    "completion_tokens", "system_prompt",
)
_JSON_FIELDS = ("retrieved_documents", "tool_calls", "metadata")


def _stored_turns(keys: set[tuple[str, str]]) -> tuple[dict[tuple[str, str], list[dict[str, Any]]], dict]:
    """The stored turns of these conversations as native turn records (with their sort key in metadata), and each
    conversation's metadata."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    metadata: dict[tuple[str, str], dict] = {}
    if not keys:
        return out, metadata
    query = services.conversation_key_filter(keys, prefix="conversation__")
    # The JSON columns are read as text and parsed with orjson: a conversation's every turn is read again on each
    # export that extends it, and the stdlib decoder was a third of an export's time (bench/ingest_bench.py).
    rows = Turn.objects.filter(query).order_by("conversation_id", "position").annotate(
        **{f"{name}_json": Cast(name, TextField()) for name in _JSON_FIELDS}
    ).values_list("conversation__source", "conversation__external_id", *_TURN_FIELDS,
                  *(f"{name}_json" for name in _JSON_FIELDS))
    for source, external_id, *values in rows:
        t = dict(zip(_TURN_FIELDS, values, strict=False))
        for name, text in zip(_JSON_FIELDS, values[len(_TURN_FIELDS):], strict=True):
            t[name] = orjson.loads(text) if text else None
        meta = t["metadata"] or {}
        record: dict[str, Any] = {"role": t["role"], "content": t["content"], "metadata": meta}
        if "id" in meta:
            record["id"] = meta.pop("id")
        if t["created_at"]:
            record["created_at"] = t["created_at"].isoformat()
        for name in ("latency_ms", "confidence"):
            if t[name] is not None:
                record[name] = t[name]
        if t["model_version"]:
            record["model_version"] = t["model_version"]
        usage = {k: t[k] for k in ("prompt_tokens", "completion_tokens") if t[k] is not None}
        if usage:
            record["usage"] = usage
        context = {k: t[k] for k in ("system_prompt", "retrieved_documents", "tool_calls") if t[k]}
        if context:
            record["context"] = context
        out[(source, external_id)].append(record)
    if out:
        for source, external_id, conv_meta in Conversation.objects.filter(
            services.conversation_key_filter(set(out))
        ).values_list("source", "external_id", "metadata"):
            metadata[(source, external_id)] = conv_meta or {}
    return out, metadata


def _sort_of(record: dict[str, Any]) -> list[int]:
    return list((record.get("metadata") or {}).get("otel", {}).get("sort") or [0, 0, 0])


def export_ingest(
    spans: list[Span],
    *,
    may_write: Callable[[str], bool],
    default_source: str | None,
    label: str,
) -> ExportResult:
    """Map ``spans`` onto conversations and store them (see the module docstring). SourceForbidden when a span's
    source (the token's, or the resource's ``service.name`` for a token of several sources) is not the sender's."""
    result = ExportResult()
    by_id = {s.span_id: s for s in spans}
    ignored = unsourced = 0
    named: list[tuple[str, str | None, Span]] = []  # (source, conversation id or None, span)
    for s in spans:
        if not genai.is_genai(s):
            ignored += 1
            continue
        source = _source_of(s, default_source)
        if source is None:
            unsourced += 1
            continue
        if not may_write(source):
            raise services.SourceForbidden("resource.service.name", source)
        named.append((source, genai.conversation_id(s, by_id), s))
    # A span without a conversation id joins the conversation of its trace: named by another span of this export, or
    # of an earlier one (exporters send spans as they end, children before their parents).
    by_trace = {_trace_key(source, s.trace_id): cid for source, cid, s in named if cid}
    unnamed = {_trace_key(source, s.trace_id) for source, cid, s in named if not cid} - set(by_trace)
    if unnamed:
        by_trace.update({k: v for k, v in cache.get_many(list(unnamed)).items() if v})
    groups: dict[tuple[str, str], list[Span]] = defaultdict(list)
    for source, cid, s in named:
        key = _trace_key(source, s.trace_id)
        groups[(source, cid or by_trace.get(key) or f"trace:{s.trace_id}")].append(s)
    if by_trace:
        cache.set_many(by_trace, timeout=TRACE_MEMORY_SECONDS)
    if unsourced:
        result.rejected_spans += unsourced
        result.messages.append(f"{unsourced} spans name no source: bind the token to one source, or set service.name")
    if ignored:
        result.messages.append(f"{ignored} spans without gen_ai attributes were ignored")
    if not groups:
        return result
    # Read, extend and write each conversation under a lock of its key, so two exports extending the same
    # conversation at once (two web processes) follow one another instead of each dropping the other's turns.
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Traces are telemetry, as an import's chunks are: the answer need not wait for the disk (a crash of
            # PostgreSQL itself within a fraction of a second could lose the export; the database stays consistent).
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
            cursor.execute(ingest_sql.LOCK_KEYS, [sorted(f"{source}\x1f{conv_id}" for source, conv_id in groups)])
        _ingest_groups(groups, result, may_write=may_write, default_source=default_source, label=label)
    return result


def _ingest_groups(groups: dict[tuple[str, str], list[Span]], result: ExportResult, *,
                   may_write: Callable[[str], bool], default_source: str | None, label: str) -> None:
    """Store each conversation's new turns: appended to a stored conversation when they all come after its last
    turn (the usual case: only the new turns are written), else by rebuilding and merging its whole record."""
    span_ids = [s.span_id for group in groups.values() for s in group]
    tool_ids = [str(s.attributes["gen_ai.tool.call.id"]) for group in groups.values() for s in group
                if "gen_ai.tool.call.id" in s.attributes]
    states = services.append_states(set(groups), span_ids=span_ids, tool_ids=[*tool_ids, *genai.called_tools(groups)])
    appends: list[services.Append] = []
    append_spans: list[int] = []
    rebuild: dict[tuple[str, str], list[Span]] = {}
    for key, group in groups.items():
        state = states.get(key)
        if state is None or state.last_sort is None:
            rebuild[key] = group
            continue
        turns = genai.new_turns(group, known_spans=set(state.span_ids), known_tools=set(state.tool_ids), first=False)
        if not turns:
            continue  # every span was stored before
        if turns[0].sort < tuple(state.last_sort):
            rebuild[key] = group  # a span that belongs before a stored turn: the record is rebuilt in order
            continue
        records = [t.record for t in turns]
        models = [t["model_version"] for t in records if t.get("model_version")]
        appends.append(services.Append(
            key=key, state=state, turns=records, metadata=_metadata(group, state.metadata),
            model_version=models[-1] if models else "", ended_at=genai.iso(max(s.end_ns for s in group)),
        ))
        append_spans.append(len(group))
    if appends:
        _report(result, services.conversations_append(appends=appends, label=label), append_spans)
    if rebuild:
        _rebuild(rebuild, result, may_write=may_write, default_source=default_source, label=label)


def _report(result: ExportResult, ingested: services.Result, spans_of: list[int]) -> None:
    for outcome, count in zip(ingested.outcomes, spans_of, strict=True):
        if outcome.status == services.REJECTED:
            result.rejected_spans += count
            result.messages.append(f"conversation {outcome.id}: {outcome.field or 'record'}: {outcome.reason}")
        result.conversations.append(outcome.as_dict())


def _rebuild(groups: dict[tuple[str, str], list[Span]], result: ExportResult, *,
             may_write: Callable[[str], bool], default_source: str | None, label: str) -> None:
    """Merge the groups' spans with their conversations' stored turns and send the whole records through the import
    merge (new conversations; spans out of order)."""
    stored, stored_meta = _stored_turns(set(groups))
    records = []
    spans_of: list[int] = []
    prefixes: dict[tuple[str, str], int] = {}
    for (source, conv_id), group in groups.items():
        existing = stored.get((source, conv_id), [])
        otel = [(t.get("metadata") or {}).get("otel", {}) for t in existing]
        new = genai.new_turns(group, known_spans={o.get("span_id") for o in otel if o.get("span_id")},
                              known_tools={str(c) for o in otel if (c := (o.get("tool") or {}).get("call_id"))},
                              first=not existing)
        # A model call that arrives after a later call of the same conversation (exports sent in parallel) repeats
        # messages the later call's input history brought already: keep those once.
        from_history = {genai.message_key(t) for t in existing if ":in:" in str(t.get("id", ""))}
        new = [t for t in new if genai.message_key(t.record) not in from_history]
        if not new:
            continue
        turns = sorted([*(genai.MappedTurn(tuple(_sort_of(t)), t) for t in existing), *new],  # type: ignore[misc]
                       key=lambda t: t.sort)
        prefix = 0
        while prefix < len(existing) and turns[prefix].record is existing[prefix]:
            prefix += 1
        prefixes[(source, conv_id)] = prefix
        records.append(_record(source, conv_id, group, [t.record for t in turns], stored_meta.get((source, conv_id))))
        spans_of.append(len(group))
    if records:
        _report(result, services.conversations_ingest(
            records=records, may_write=may_write, default_source=default_source, label=label, stored_turns=prefixes,
        ), spans_of)


def _metadata(group: list[Span], stored: dict | None) -> dict[str, Any]:
    """The conversation's metadata: what it had, with its app's resource attributes (each turn keeps its own span
    and trace ids in ``metadata.otel``)."""
    stored = stored or {}
    return {**stored, "otel": {**(stored.get("otel") or {}), "resource": group[0].resource}}


def _record(source: str, conv_id: str, group: list[Span], turns: list[dict[str, Any]], stored: dict | None,
            ) -> dict[str, Any]:
    resource = group[0].resource
    attrs: dict[str, Any] = {}
    for s in group:
        attrs.update(s.attributes)
    env = resource.get("deployment.environment.name") or resource.get("deployment.environment")
    env = str(env).lower() if env else ""
    env = {"production": "prod", "development": "dev", "staging": "test"}.get(env, env)
    user = attrs.get("user.id") or attrs.get("enduser.id")
    models = [t.get("model_version") for t in turns if t.get("model_version")]
    record: dict[str, Any] = {
        "id": conv_id,
        "source": source,
        "turns": turns,
        "metadata": _metadata(group, stored),
    }
    if env in Environment.values:
        record["environment"] = env
    if user:
        record["user"] = {"id": str(user)[:255]}
    if models:
        record["model_version"] = models[-1]
    version = resource.get("service.version")
    if version:
        record["app_version"] = str(version)[:128]
    starts = [t["created_at"] for t in turns if t.get("created_at")]
    if starts:
        record["started_at"] = min(starts)
    ends = [s.end_ns for s in group if s.end_ns]
    if ends:
        record["ended_at"] = genai.iso(max(ends))
    return record

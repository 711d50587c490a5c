"""Reads of the curation app: dataset pages, the approved-corrections list, and the streamed rows of exports.

Export rows are read with ``.values_list(...).iterator(chunk_size=...)`` (a server-side cursor), so an export of any
size holds one chunk of rows in memory at a time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.contrib.postgres.aggregates import ArrayAgg
from django.db.models import BigIntegerField, Count, Exists, OuterRef, Q, QuerySet, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from annotations.curation.models import Dataset, DatasetVersion, Example, ExampleStatus, ExportJob, VersionExample
from annotations.models import AnchorState, Annotation, Correction, CorrectionStatus, Score, Tag

EXPORT_CHUNK_SIZE = 2000
PAGE_SIZE = 50
#: The metadata keys every example carries, in this order (the hf export declares them as features).
METADATA_KEYS: tuple[str, ...] = ("source", "external_id", "conversation_id", "turn_id", "model_version", "environment")


class ExampleRecord(NamedTuple):
    """One example as the exporters see it, from a live example or a version's frozen row."""

    id: int
    system_prompt: str
    messages: list[dict[str, Any]]
    original: str
    corrected: str
    rationale: str
    tags: list[str]
    metadata: dict[str, Any]
    retrieved_documents: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []


_RECORD_FIELDS = (
    "system_prompt", "messages", "original", "corrected", "rationale", "tags", "metadata", "retrieved_documents",
    "tool_calls",
)


class AnnotationRecord(NamedTuple):
    id: int
    conversation_id: int
    turn_id: int
    kind: str
    body: str
    exact: str
    prefix: str
    suffix: str
    start: int | None
    end: int | None
    anchor_state: str
    replacement: str
    created_at: Any
    updated_at: Any
    author: str
    tags: list[str]


# --- export rows ----------------------------------------------------------------------------------------------------


def _example_rows(*, dataset: Dataset | None, version: DatasetVersion | None) -> QuerySet:
    if version is not None:
        return VersionExample.objects.filter(version=version).order_by("position")
    queryset = Example.objects.filter(status=ExampleStatus.APPROVED)
    if dataset is not None:
        queryset = queryset.filter(dataset=dataset)
    return queryset.order_by("dataset_id", "id")


def example_count(*, dataset: Dataset | None = None, version: DatasetVersion | None = None) -> int:
    if version is not None:
        return version.example_count
    return _example_rows(dataset=dataset, version=None).count()


def example_records(
    *, dataset: Dataset | None = None, version: DatasetVersion | None = None, chunk_size: int = EXPORT_CHUNK_SIZE
) -> Iterator[ExampleRecord]:
    """The approved examples of ``dataset`` (all datasets when None), or the frozen rows of ``version``, each with
    its reply's rubric scores in ``metadata["scores"]`` (one more query per chunk). A version's frozen rows are
    exported as they were frozen: its bytes and sha256 do not move when reviewers score later."""
    id_field = "example_id" if version is not None else "id"
    rows = _example_rows(dataset=dataset, version=version).values_list(id_field, *_RECORD_FIELDS)
    if version is not None:
        for row in rows.iterator(chunk_size=chunk_size):
            yield ExampleRecord(*row)
        return
    chunk: list[ExampleRecord] = []
    for row in rows.iterator(chunk_size=chunk_size):
        chunk.append(ExampleRecord(*row))
        if len(chunk) >= chunk_size:
            yield from _with_scores(chunk)
            chunk = []
    yield from _with_scores(chunk)


def _with_scores(records: list[ExampleRecord]) -> list[ExampleRecord]:
    scores = export_scores([t for t in {r.metadata.get("turn_id") for r in records} if isinstance(t, int)])
    return [r._replace(metadata={**r.metadata, "scores": scores[r.metadata["turn_id"]]})
            if r.metadata.get("turn_id") in scores else r for r in records]


def export_scores(turn_ids: list[int]) -> dict[int, dict[str, dict[str, Any]]]:
    """Rubric scores of replies as exports carry them: per field key, its name and version, the gold value (or
    None) and each reviewer's value by username."""
    found: dict[int, dict[str, dict[str, Any]]] = {}
    if not turn_ids:
        return found
    rows = Score.objects.filter(turn_id__in=turn_ids).select_related("config", "author").order_by("turn_id", "pk")
    for score in rows:
        entry = found.setdefault(score.turn_id, {}).setdefault(score.config.key, {
            "name": score.config.name, "version": score.config.version, "gold": None, "reviewers": {}})
        if score.is_gold:
            entry["gold"] = score.display
        else:
            entry["reviewers"][score.author.username] = score.display
    return found


def _annotation_rows(*, dataset: Dataset | None, version: DatasetVersion | None) -> QuerySet:
    queryset = Annotation.objects.filter(deleted_at__isnull=True)
    if version is not None:
        turns = VersionExample.objects.filter(version=version).annotate(
            source_turn=Cast(KeyTextTransform("turn_id", "metadata"), BigIntegerField())
        ).values("source_turn")
        queryset = queryset.filter(turn_id__in=turns)
    elif dataset is not None:
        queryset = queryset.filter(
            Exists(Example.objects.filter(dataset=dataset, turn_id=OuterRef("turn_id")).exclude(
                status=ExampleStatus.REJECTED))
        )
    return queryset


def annotation_count(*, dataset: Dataset | None = None, version: DatasetVersion | None = None) -> int:
    return _annotation_rows(dataset=dataset, version=version).count()


def annotation_records(
    *, dataset: Dataset | None = None, version: DatasetVersion | None = None, chunk_size: int = EXPORT_CHUNK_SIZE
) -> Iterator[AnnotationRecord]:
    """Live annotations (not deleted) on the turns of ``dataset``'s examples that are not rejected, or of the rows of
    ``version``; every annotation when both are None. Tag names are aggregated in the same query."""
    rows = (
        _annotation_rows(dataset=dataset, version=version)
        .annotate(tag_names=ArrayAgg("tags__name", filter=Q(tags__isnull=False), order_by="tags__name",
                                     default=Value([])))
        .order_by("id")
        .values_list(
            "id", "conversation_id", "turn_id", "kind", "body", "exact", "prefix", "suffix", "start", "end",
            "anchor_state", "replacement", "created_at", "updated_at", "author__username", "tag_names",
        )
    )
    for row in rows.iterator(chunk_size=chunk_size):
        yield AnnotationRecord(*row)


ORPHANED = AnchorState.ORPHANED


# --- pages ----------------------------------------------------------------------------------------------------------


def dataset_list() -> list[Dataset]:
    """Every dataset with its example counts by status and its number of versions: one query."""
    return list(
        Dataset.objects.annotate(
            proposed=Count("examples", filter=Q(examples__status=ExampleStatus.PROPOSED), distinct=True),
            approved=Count("examples", filter=Q(examples__status=ExampleStatus.APPROVED), distinct=True),
            rejected=Count("examples", filter=Q(examples__status=ExampleStatus.REJECTED), distinct=True),
            version_count=Count("versions", distinct=True),
        ).order_by("name")
    )


def dataset_choices() -> list[Dataset]:
    return list(Dataset.objects.only("id", "name", "slug").order_by("name"))


@dataclass
class ExamplePage:
    examples: list[Example]
    next_after: int | None
    counts: dict[str, int] = field(default_factory=dict)


def example_page(*, dataset: Dataset, status: str = "", after: int | None = None, size: int = PAGE_SIZE) -> ExamplePage:
    """One page of ``dataset``'s examples (keyset on id) with their reviewer and correction, and the counts by
    status."""
    queryset = Example.objects.filter(dataset=dataset).select_related("proposed_by", "reviewed_by", "correction")
    if status:
        queryset = queryset.filter(status=status)
    if after:
        queryset = queryset.filter(id__gt=after)
    examples = list(queryset.order_by("id")[: size + 1])
    next_after = examples[size - 1].pk if len(examples) > size else None
    return ExamplePage(examples=examples[:size], next_after=next_after, counts=example_counts(dataset))


def example_counts(dataset: Dataset) -> dict[str, int]:
    """{status: number of ``dataset``'s examples}: one query."""
    return dict(
        Example.objects.filter(dataset=dataset).values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )


#: Most examples a confirmation lists by id and question (the count and the fingerprint cover all of them).
PREVIEW_MAX = 200


def fingerprint(ids: Iterable[int]) -> str:
    """A short digest of a set of example ids: a confirmation carries it, so the write can refuse when the set it
    would change is no longer the one the user saw."""
    return hashlib.sha256(",".join(map(str, sorted(ids))).encode()).hexdigest()[:16]


@dataclass
class ExampleSet:
    """The examples an action would touch, as its confirmation shows them."""

    count: int
    fingerprint: str
    #: (id, question) of the first PREVIEW_MAX, in id order.
    shown: list[tuple[int, str]]

    @property
    def more(self) -> int:
        return self.count - len(self.shown)


def filtered_examples(dataset: Dataset, status: str = "") -> QuerySet[Example]:
    queryset = Example.objects.filter(dataset=dataset)
    return queryset.filter(status=status) if status else queryset


def example_set(queryset: QuerySet[Example]) -> ExampleSet:
    """Count, fingerprint and the first questions of ``queryset``'s examples: two queries."""
    ids = list(queryset.order_by("id").values_list("id", flat=True))
    shown = [
        (example.pk, example.question)
        for example in Example.objects.filter(pk__in=ids[:PREVIEW_MAX]).only("id", "messages").order_by("id")
    ]
    return ExampleSet(count=len(ids), fingerprint=fingerprint(ids), shown=shown)


def dataset_versions(dataset: Dataset) -> list[DatasetVersion]:
    return list(dataset.versions.select_related("created_by").order_by("-number"))


def dataset_jobs(dataset: Dataset, limit: int = 10) -> list[ExportJob]:
    return list(dataset.exports.select_related("version").order_by("-created_at", "-id")[:limit])


@dataclass(frozen=True)
class CorrectionFilters:
    model_version: str = ""
    environment: str = ""
    tag: int | None = None
    q: str = ""
    turn: int | None = None
    not_in: int | None = None  # a dataset id: hide corrections already in it

    @property
    def active(self) -> bool:
        return any([self.model_version, self.environment, self.tag, self.q, self.turn, self.not_in])


def approved_corrections(filters: CorrectionFilters) -> QuerySet[Correction]:
    """Approved corrections matching ``filters``, newest approval first, with their turn and conversation."""
    queryset = Correction.objects.filter(status=CorrectionStatus.APPROVED)
    if filters.model_version:
        queryset = queryset.filter(
            Q(turn__model_version=filters.model_version) | Q(conversation__model_version=filters.model_version)
        )
    if filters.environment:
        queryset = queryset.filter(conversation__environment=filters.environment)
    if filters.tag:
        queryset = queryset.filter(
            Exists(Annotation.objects.filter(turn_id=OuterRef("turn_id"), tags=filters.tag, deleted_at__isnull=True))
        )
    if filters.q:
        queryset = queryset.filter(Q(text__icontains=filters.q) | Q(turn__content__icontains=filters.q))
    if filters.turn:
        queryset = queryset.filter(turn_id=filters.turn)
    if filters.not_in:
        held = Example.objects.filter(dataset_id=filters.not_in, turn_id=OuterRef("turn_id"))
        queryset = queryset.exclude(Exists(held))
    return queryset.order_by("-approved_at", "-id")


@dataclass
class CorrectionPage:
    #: Each with ``dataset_names``: the datasets already holding an example of its turn.
    corrections: list[Correction]
    #: Whether another page follows.
    more: bool


def correction_page(filters: CorrectionFilters, *, size: int = PAGE_SIZE, offset: int = 0) -> CorrectionPage:
    """One page of the approved corrections matching ``filters``, and the datasets holding their turns: two
    queries."""
    rows = list(
        approved_corrections(filters)
        .select_related("turn", "conversation", "approved_by")
        .defer("conversation__search_vector")[offset : offset + size + 1]
    )
    page = CorrectionPage(corrections=rows[:size], more=len(rows) > size)
    in_datasets = datasets_of_turns([c.turn_id for c in page.corrections])
    for correction in page.corrections:
        correction.dataset_names = in_datasets.get(correction.turn_id, [])  # type: ignore[attr-defined]
    return page


def example_for_card(example_id: int) -> Example:
    """An example with what its card shows (proposer, reviewer, dataset)."""
    return Example.objects.select_related("proposed_by", "reviewed_by", "dataset", "correction").get(pk=example_id)


def correction_filter_choices() -> dict[str, list]:
    approved = Correction.objects.filter(status=CorrectionStatus.APPROVED)
    return {
        "model_versions": sorted(
            {v for v in approved.values_list("conversation__model_version", flat=True).distinct() if v}
        ),
        "environments": sorted(
            {v for v in approved.values_list("conversation__environment", flat=True).distinct() if v}
        ),
        "tags": list(Tag.objects.filter(is_active=True).order_by("group", "name")),
    }


def datasets_of_turns(turn_ids: list[int]) -> dict[int, list[str]]:
    """{turn id: names of the datasets holding an example of it}, for the corrections list: one query."""
    out: dict[int, list[str]] = {}
    for turn_id, name in Example.objects.filter(turn_id__in=turn_ids).values_list("turn_id", "dataset__name"):
        out.setdefault(turn_id, []).append(name)
    return out


class ReleasedExample(NamedTuple):
    """The frozen text of one row of a cut version, as the recall API returns it."""

    input: str
    output: str
    rationale: str


class ReleasedVersion(NamedTuple):
    dataset: str
    number: int
    #: The frozen rows by the id of the reply they were made from (rows whose reply is unknown are left out).
    by_turn: dict[int, ReleasedExample]


def released_version(*, dataset_name: str, number: int | None = None) -> ReleasedVersion | None:
    """The recall API's dataset gate: version ``number`` of the dataset named ``dataset_name`` (None: the newest
    cut version) with its frozen rows, or None when there is no such dataset or version. Two queries."""
    versions = DatasetVersion.objects.filter(dataset__name=dataset_name)
    if number is not None:
        versions = versions.filter(number=number)
    version = versions.order_by("-number").values_list("pk", "number").first()
    if version is None:
        return None
    by_turn: dict[int, ReleasedExample] = {}
    rows = VersionExample.objects.filter(version_id=version[0]).values_list("metadata", "messages", "corrected",
                                                                            "rationale")
    for metadata, messages, corrected, rationale in rows:
        turn_id = (metadata or {}).get("turn_id")
        if not isinstance(turn_id, int):
            continue
        question = next((m.get("content", "") for m in reversed(messages or []) if m.get("role") == "user"), "")
        by_turn[turn_id] = ReleasedExample(input=question, output=corrected, rationale=rationale)
    return ReleasedVersion(dataset=dataset_name, number=version[1], by_turn=by_turn)

"""Curation pages: datasets, a dataset's examples (review), versions, exports (streamed, or as a background job), and
the approved-corrections list to add examples from. Permissions are checked by the services and ``_require_read``;
``PermissionDenied`` becomes a 403."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotations import permissions as review_perms
from annotations.curation import exporters, selectors, services, tasks
from annotations.curation import permissions as perms
from annotations.curation.forms import (
    BulkReviewForm,
    CorrectionAddForm,
    CorrectionFilterForm,
    ExamplePageForm,
    ExportForm,
    ReviewForm,
    VersionCutForm,
    valid_or_400,
)
from annotations.curation.models import Dataset, DatasetVersion, Example, ExampleStatus, ExportFormat, ExportJob
from feedbackhub.http import HtmxHttpRequest
from feedbackhub.outbox import enqueue_on_commit
from sessions.models import Environment


def _require_read(request: HttpRequest) -> None:
    perms.require_read(request.user)


def _error_text(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return " ".join(f"{msg}" for msgs in exc.message_dict.values() for msg in msgs)
    return " ".join(exc.messages)


def _perm_context(request: HttpRequest) -> dict:
    return {"can_curate": perms.can_curate(request.user), "can_propose": perms.can_propose(request.user)}


# --- datasets -------------------------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def dataset_list(request: HttpRequest) -> HttpResponse:
    _require_read(request)
    error = ""
    status = 200
    if request.method == "POST":
        try:
            dataset = services.dataset_create(
                actor=request.user, name=request.POST.get("name", ""), description=request.POST.get("description", "")
            )
        except ValidationError as exc:
            error, status = _error_text(exc), 400
        else:
            messages.success(request, f"Dataset “{dataset.name}” created.")
            return redirect(dataset)
    context = {"nav": "datasets", "datasets": selectors.dataset_list(), "error": error, "form_data": request.POST,
               **_perm_context(request)}
    return render(request, "curation/list.html", context, status=status)


STATUS_FILTERS = [("", "All"), *ExampleStatus.choices]
#: (format, button text, tooltip) of the export buttons.
EXPORT_BUTTONS = [
    (ExportFormat.OPENAI, "OpenAI", ExportFormat.OPENAI.label),
    (ExportFormat.DPO, "DPO", ExportFormat.DPO.label),
    (ExportFormat.DPO_CHAT, "DPO chat", ExportFormat.DPO_CHAT.label),
    (ExportFormat.HF, "HF zip", ExportFormat.HF.label),
    (ExportFormat.W3C, "W3C", "W3C Web Annotation JSON-LD of the review annotations on these replies"),
    (ExportFormat.CSV, "CSV", ExportFormat.CSV.label),
]


def _with_refusals(request: HttpRequest, examples: list[Example]) -> list[Example]:
    """Mark each example whose approval four-eyes refuses to this user, so its card says why."""
    for example in examples:
        example.approve_refusal = review_perms.four_eyes_refusal(request.user, example.correction)  # type: ignore[attr-defined]
    return examples


def _counts_context(dataset: Dataset, status: str, counts: dict[str, int] | None = None) -> dict:
    """What the status filter, the export panel's total and the bulk panel show: the counts by status."""
    counts = selectors.example_counts(dataset) if counts is None else counts
    return {
        "dataset": dataset,
        "status": status,
        "status_filters": [
            (value, label, counts.get(value, 0) if value else sum(counts.values())) for value, label in STATUS_FILTERS
        ],
        "approved": counts.get(ExampleStatus.APPROVED, 0),
        "filtered_count": counts.get(status, 0) if status else sum(counts.values()),
        "stream_max": services.stream_max(),
    }


@require_GET
def dataset_detail(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """A dataset: its examples (status filter, keyset pages; htmx gets only the ``examples`` fragment with the
    status filter, bulk panel and totals out of band), its versions, the export buttons and the recent export jobs."""
    _require_read(request)
    dataset = get_object_or_404(Dataset, slug=slug)
    params = valid_or_400(ExamplePageForm(request.GET))
    status = params["status"]
    page = selectors.example_page(dataset=dataset, status=status, after=params["after"])
    _with_refusals(request, page.examples)
    context = {
        "nav": "datasets",
        "page": page,
        "next_url": f"?{urlencode({'status': status, 'after': page.next_after})}" if page.next_after else "",
        **_counts_context(dataset, status, page.counts),
        **_perm_context(request),
    }
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "curation/dataset.html#examples_update", context)
    context.update(
        versions=selectors.dataset_versions(dataset),
        jobs=selectors.dataset_jobs(dataset),
        formats=EXPORT_BUTTONS,
    )
    return render(request, "curation/dataset.html", context)


@require_POST
def example_review(request: HtmxHttpRequest, example_id: int) -> HttpResponse:
    """Approve/reject an example and/or save the reviewer notes; answers with the example's card, and out of band
    the status counts, the bulk panel and the export panel's total, so the page never shows stale numbers."""
    perms.require_curate(request.user)  # a PermissionDenied below is four-eyes, shown on the card
    example = get_object_or_404(Example, pk=example_id)
    params = valid_or_400(ReviewForm(request.POST))
    error, status = "", 200
    try:
        example = services.example_review(
            actor=request.user, example_id=example.pk, decision=params["decision"],
            notes=request.POST.get("notes"),
        )
    except ValidationError as exc:
        error, status = _error_text(exc), 400
    except PermissionDenied as exc:
        error, status = str(exc), 403
    example = _with_refusals(request, [selectors.example_for_card(example.pk)])[0]
    if request.htmx:
        context = {"example": example, "error": error, **_counts_context(example.dataset, params["filter"]),
                   **_perm_context(request)}
        return render(request, "curation/dataset.html#example_update", context, status=status)
    if error:
        messages.error(request, error)
    return redirect(example.dataset)


@require_POST
def examples_bulk(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """Approve or reject every example of the current filter. First a confirmation naming the count (and the
    examples); on confirm, all or nothing: the refused examples are listed with the reason, else the list and the
    counts are redrawn."""
    dataset = get_object_or_404(Dataset, slug=slug)
    perms.require_curate(request.user)
    params = valid_or_400(BulkReviewForm(request.POST))
    status, decision = params["status"], params["decision"]
    context: dict = {"decision": decision, **_counts_context(dataset, status), **_perm_context(request)}
    if not params["confirm"]:
        context["pending"] = selectors.example_set(selectors.filtered_examples(dataset, status))
        return _render_fragment(request, "curation/dataset.html#bulk", context)
    try:
        changed = services.examples_review_bulk(actor=request.user, dataset=dataset, status=status,
                                                decision=decision, fingerprint=params["fingerprint"])
    except services.BulkRefused as exc:
        context["refused"] = exc.refused
        return _render_fragment(request, "curation/dataset.html#bulk", context, status=400)
    except ValidationError as exc:
        context["bulk_error"] = _error_text(exc)
        return _render_fragment(request, "curation/dataset.html#bulk", context, status=400)
    done = f"{changed} example{'s' if changed != 1 else ''} {'approved' if decision == 'approve' else 'rejected'}."
    if not request.htmx:
        messages.success(request, done)
        return redirect(f"{dataset.get_absolute_url()}?{urlencode({'status': status})}")
    page = selectors.example_page(dataset=dataset, status=status)
    _with_refusals(request, page.examples)
    context.update(_counts_context(dataset, status, page.counts))
    context.update(page=page, bulk_done=done,
                   next_url=f"?{urlencode({'status': status, 'after': page.next_after})}" if page.next_after else "")
    return render(request, "curation/dataset.html#bulk_update", context)


def _render_fragment(request: HtmxHttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    """An htmx fragment, or for a browser without htmx the same fragment in a page of its own."""
    if request.htmx:
        return render(request, template, context, status=status)
    return render(request, "curation/step.html", {"fragment": template, "nav": "datasets", **context}, status=status)


@require_GET
def version_preview(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """What cutting a version now would freeze: the approved examples (count, ids and questions), and the confirm
    form that carries their fingerprint."""
    dataset = get_object_or_404(Dataset, slug=slug)
    perms.require_curate(request.user)
    params = valid_or_400(VersionCutForm(request.GET))
    preview = selectors.example_set(selectors.filtered_examples(dataset, ExampleStatus.APPROVED))
    context = {"dataset": dataset, "preview": preview, "note": params["note"], **_perm_context(request)}
    return _render_fragment(request, "curation/dataset.html#cut_preview", context)


@require_POST
def version_cut(request: HttpRequest, slug: str) -> HttpResponse:
    dataset = get_object_or_404(Dataset, slug=slug)
    params = valid_or_400(VersionCutForm(request.POST))
    try:
        version = services.version_cut(actor=request.user, dataset=dataset, note=params["note"],
                                       fingerprint=params["fingerprint"] or None)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, f"Version {version.number} cut: {version.example_count} approved examples frozen.")
    return redirect(dataset)


@require_GET
def scrub_summary(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """The export panel's badge: what the scrubber would replace in the approved examples as they are now (loaded
    after the page, and again whenever the approved total changes)."""
    _require_read(request)
    dataset = get_object_or_404(Dataset, slug=slug)
    return render(request, "curation/dataset.html#scrub_badge", {"scrub": exporters.scrub_summary(dataset)})


# --- exports --------------------------------------------------------------------------------------------------------


def _export_source(
    request: HttpRequest, dataset: Dataset, version: DatasetVersion | None, *, scrub: bool = True
) -> exporters.ExportSource:
    return exporters.ExportSource(dataset=dataset, version=version, base_url=request.build_absolute_uri("/"),
                                  scrub=scrub)


@require_POST
def dataset_export(request: HttpRequest, slug: str) -> HttpResponseBase:
    """Export the dataset's approved examples (or one version) in ``format``: streamed straight to the browser when
    small, otherwise queued as a job (the page that follows shows its progress and then a download link)."""
    _require_read(request)
    dataset = get_object_or_404(Dataset, slug=slug)
    form = ExportForm(request.POST)
    if not form.is_valid() and "format" in form.errors:
        messages.error(request, f"Unknown export format {request.POST.get('format', '')!r}.")
        return redirect(dataset)
    params = valid_or_400(form)
    fmt, number = params["format"], params["version"]
    version = None
    if number is not None:
        version = DatasetVersion.objects.filter(dataset=dataset, number=number).first()
        if version is None:
            raise Http404(f"Dataset {dataset.name!r} has no version {number}.")
    if fmt == ExportFormat.DPO and params["dpo_form"] == "messages":
        fmt = ExportFormat.DPO_CHAT
    exporter = exporters.get(fmt)
    scrub = not params["unscrubbed"]
    if not scrub:
        perms.require_unscrubbed(request.user)
    source = _export_source(request, dataset, version, scrub=scrub)
    if services.export_is_large(count=source.example_count()):
        with transaction.atomic():
            job = services.export_job_create(actor=request.user, format=fmt, dataset=dataset, version=version,
                                             base_url=source.base_url, scrub=scrub)
            enqueue_on_commit(tasks.export_job_run, job.pk)  # the outbox keeps it while Redis is down
        return redirect(job)
    response = StreamingHttpResponse(exporter.chunks(source), content_type=exporter.content_type)
    response["Content-Disposition"] = f'attachment; filename="{source.label}-{fmt}{exporter.extension}"'
    return response


@require_GET
def export_job(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """An export job; htmx polls its ``status`` fragment every second until it has finished."""
    _require_read(request)
    job = get_object_or_404(ExportJob.objects.select_related("dataset", "version"), pk=pk)
    template = "curation/job.html"
    if request.htmx and request.htmx.target == "export-status":
        template += "#status"
    return render(request, template, {"job": job, "nav": "datasets"})


@require_GET
def export_download(request: HttpRequest, pk: int) -> FileResponse:
    _require_read(request)
    job = get_object_or_404(ExportJob, pk=pk)
    if not job.path or job.status != "done":
        raise Http404("This export has no file (yet).")
    try:
        stream = open(job.path, "rb")  # noqa: SIM115 (FileResponse closes it)
    except OSError:
        raise Http404("The export file is no longer on the server; export again.") from None
    return FileResponse(stream, as_attachment=True, filename=job.file_name)


# --- approved corrections -------------------------------------------------------------------------------------------


@require_GET
def correction_list(request: HtmxHttpRequest) -> HttpResponse:
    """Approved corrections with filters, to add to a dataset: the checked ones or every match of the filters."""
    _require_read(request)
    form = CorrectionFilterForm(request.GET)
    offset = valid_or_400(form)["offset"]
    filters = form.filters()
    page = selectors.correction_page(filters, offset=offset)
    query = {k: v for k, v in request.GET.items() if k != "offset" and v}
    context = {
        "nav": "datasets",
        "corrections": page.corrections,
        "filters": filters,
        "choices": selectors.correction_filter_choices(),
        "datasets": selectors.dataset_choices(),
        "query": urlencode(query),
        "next_url": f"?{urlencode({**query, 'offset': offset + selectors.PAGE_SIZE})}" if page.more else "",
        "prev_url": f"?{urlencode({**query, 'offset': max(0, offset - selectors.PAGE_SIZE)})}" if offset else "",
        "environments": Environment.choices,
        **_perm_context(request),
    }
    return render(request, "curation/corrections.html", context)


@require_POST
def correction_add(request: HttpRequest) -> HttpResponse:
    """Add the checked corrections (``correction`` values), or with ``all=1`` every one matching the filters."""
    back = reverse("curation:corrections") + (f"?{request.POST['query']}" if request.POST.get("query") else "")
    form = CorrectionAddForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose the dataset to add to.")
        return redirect(back)
    dataset = form.cleaned_data["dataset"]
    try:
        if request.POST.get("all") == "1":
            filters = CorrectionFilterForm(QueryDict(request.POST.get("query", "")))
            valid_or_400(filters)
            result = services.examples_add_matching(actor=request.user, dataset=dataset, filters=filters.filters())
        else:
            result = services.examples_add(
                actor=request.user, dataset=dataset, correction_ids=request.POST.getlist("correction")
            )
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
        return redirect(back)
    messages.success(request, f"{dataset.name}: {result.message}")
    return redirect(back)

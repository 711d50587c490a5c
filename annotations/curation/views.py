"""Curation pages: datasets, a dataset's examples (review), versions, exports (streamed, or as a background job), and
the approved-corrections list to add examples from. Permissions are checked by the services and ``_require_read``;
``PermissionDenied`` becomes a 403."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotations.curation import exporters, selectors, services, tasks
from annotations.curation import permissions as perms
from annotations.curation.exporters import dpo
from annotations.curation.forms import (
    CorrectionAddForm,
    CorrectionFilterForm,
    ExamplePageForm,
    ExportForm,
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
    (ExportFormat.HF, "HF zip", ExportFormat.HF.label),
    (ExportFormat.W3C, "W3C", "W3C Web Annotation JSON-LD of the review annotations on these replies"),
    (ExportFormat.CSV, "CSV", ExportFormat.CSV.label),
]


@require_GET
def dataset_detail(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """A dataset: its examples (status filter, keyset pages; htmx gets only the ``examples`` fragment), its
    versions, the export buttons and the recent export jobs."""
    _require_read(request)
    dataset = get_object_or_404(Dataset, slug=slug)
    params = valid_or_400(ExamplePageForm(request.GET))
    status = params["status"]
    page = selectors.example_page(dataset=dataset, status=status, after=params["after"])
    context = {
        "nav": "datasets",
        "dataset": dataset,
        "page": page,
        "status": status,
        "status_filters": [
            (value, label, page.counts.get(value, 0) if value else sum(page.counts.values()))
            for value, label in STATUS_FILTERS
        ],
        "next_url": f"?{urlencode({'status': status, 'after': page.next_after})}" if page.next_after else "",
        **_perm_context(request),
    }
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "curation/dataset.html#examples", context)
    context.update(
        versions=selectors.dataset_versions(dataset),
        jobs=selectors.dataset_jobs(dataset),
        formats=EXPORT_BUTTONS,
        approved=page.counts.get(ExampleStatus.APPROVED, 0),
        stream_max=services.stream_max(),
    )
    return render(request, "curation/dataset.html", context)


@require_POST
def example_review(request: HtmxHttpRequest, example_id: int) -> HttpResponse:
    """Approve/reject an example and/or save the reviewer notes; answers with the example's card."""
    example = get_object_or_404(Example, pk=example_id)
    error = ""
    try:
        example = services.example_review(
            actor=request.user, example_id=example.pk, decision=request.POST.get("decision", ""),
            notes=request.POST.get("notes"),
        )
    except ValidationError as exc:
        error = _error_text(exc)
    example = selectors.example_for_card(example.pk)
    context = {"example": example, "error": error, "dataset": example.dataset, **_perm_context(request)}
    if request.htmx:
        return render(request, "curation/dataset.html#example", context, status=400 if error else 200)
    if error:
        messages.error(request, error)
    return redirect(example.dataset)


@require_POST
def version_cut(request: HttpRequest, slug: str) -> HttpResponse:
    dataset = get_object_or_404(Dataset, slug=slug)
    try:
        version = services.version_cut(actor=request.user, dataset=dataset, note=request.POST.get("note", ""))
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, f"Version {version.number} cut: {version.example_count} approved examples frozen.")
    return redirect(dataset)


# --- exports --------------------------------------------------------------------------------------------------------


def _export_source(request: HttpRequest, dataset: Dataset, version: DatasetVersion | None) -> exporters.ExportSource:
    return exporters.ExportSource(dataset=dataset, version=version, base_url=request.build_absolute_uri("/"))


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
    exporter = dpo.MESSAGES_EXPORTER if fmt == "dpo" and params["dpo_form"] == "messages" else \
        exporters.get(fmt)
    source = _export_source(request, dataset, version)
    if services.export_is_large(count=source.example_count()):
        with transaction.atomic():
            job = services.export_job_create(actor=request.user, format=fmt, dataset=dataset, version=version,
                                             base_url=source.base_url)
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

"""Import pages: upload a log file (run by a Celery worker) and follow its progress to the final report."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from feedbackhub.http import HtmxHttpRequest
from feedbackhub.outbox import enqueue_on_commit
from feedbackhub.roles import can_import
from sessions import tasks
from sessions.imports import runs, selectors
from sessions.imports.forms import ImportUploadForm
from sessions.imports.uploads import (
    StoredUpload,
    StreamingHashUploadHandler,
    abandoned_uploads_remove,
    remove_stored_file,
    upload_import_batch_create,
)


def _require_importer(request: HttpRequest) -> None:
    if not can_import(request.user):
        raise PermissionDenied("Importing logs is for moderators and admins.")


# The upload handler must be installed before the body is read, and CsrfViewMiddleware reads it (request.POST) in
# process_view; so CSRF is checked by csrf_protect on the inner view instead, as Django's docs describe.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def import_list(request: HttpRequest) -> HttpResponse:
    _require_importer(request)  # before any byte of an upload is written
    handler = None
    if request.method == "POST":
        handler = StreamingHashUploadHandler(request)
        request.upload_handlers = [handler]
    try:
        return _import_list(request, handler)
    except BaseException:
        if handler is not None:
            handler.upload_interrupted()
        raise


@csrf_protect
def _import_list(request: HttpRequest, handler: StreamingHashUploadHandler | None) -> HttpResponse:
    status = 200
    if request.method == "POST" and handler is not None:
        form = ImportUploadForm(
            request.POST, request.FILES, max_bytes=handler.max_bytes, too_large=handler.too_large
        )
        upload = request.FILES.get("file")
        valid = form.is_valid()
        if handler.extra_parts:
            form.add_error("file", "Send one file per import.")
            valid = False
        if valid and isinstance(upload, StoredUpload):
            try:
                with transaction.atomic():
                    batch = upload_import_batch_create(
                        upload=upload,
                        source=form.cleaned_data["source"],
                        format=form.cleaned_data["format"] or None,
                        user=request.user,
                    )
                    # Through the outbox, once the batch row is committed: queued even while Redis is down.
                    enqueue_on_commit(tasks.import_batch_process, batch.pk)
            except BaseException:
                remove_stored_file(upload.path)
                raise
            # Uploads are rare: each one also clears the files of imports abandoned long ago.
            abandoned_uploads_remove()
            return redirect(batch)
        if isinstance(upload, StoredUpload):
            remove_stored_file(upload.path)  # the form was refused: keep nothing of it
        status = 400
    else:
        form = ImportUploadForm()
    context = {"form": form, "batches": selectors.import_batch_recent(), "nav": "imports"}
    return render(request, "sessions/import_list.html", context, status=status)


@require_http_methods(["GET"])
def import_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The batch page; htmx polls its ``status`` fragment every second until the batch has finished."""
    _require_importer(request)
    report = selectors.import_batch_report(pk=pk)
    template = "sessions/import_detail.html"
    if request.htmx and request.htmx.target == "import-status":
        template += "#status"
    return render(request, template, {"report": report, "batch": report.batch, "nav": "imports"})


@require_POST
def import_retry(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Queue a failed or stalled import again (it resumes after its last committed chunk); answers the status
    fragment for htmx (polling again), or redirects to the batch page."""
    _require_importer(request)
    error = ""
    try:
        runs.import_batch_retry(
            batch_id=pk, process=tasks.import_batch_process, stale_seconds=settings.IMPORT_STALE_SECONDS
        )
    except runs.NotRetryable as exc:
        error = str(exc)
    report = selectors.import_batch_report(pk=pk)
    if not request.htmx:
        if error:
            context = {"report": report, "batch": report.batch, "nav": "imports", "retry_error": error}
            return render(request, "sessions/import_detail.html", context, status=400)
        return redirect(report.batch)
    context = {"report": report, "batch": report.batch, "retry_error": error}
    return render(request, "sessions/import_detail.html#status", context, status=400 if error else 200)

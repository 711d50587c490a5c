from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from sessions.models import ImportBatch


def import_list(request: HttpRequest) -> HttpResponse:
    return render(request, "sessions/import_list.html", {"batches": ImportBatch.objects.all()[:50]})


def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(ImportBatch, pk=pk)
    return render(request, "sessions/import_detail.html", {"batch": batch})

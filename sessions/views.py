from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from sessions.models import Conversation


def conversation_list(request: HttpRequest) -> HttpResponse:
    return render(request, "sessions/list.html", {"conversations": Conversation.objects.order_by("-id")[:50]})


def conversation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = get_object_or_404(Conversation, pk=pk)
    return render(request, "sessions/detail.html", {"conversation": conversation})

"""Review queue pages: my queues and all queues, building one, working through one (the review workspace with the
rubric beside it), its progress and agreement, and adjudication. Thin: selectors read, services write."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotations import services as review_services
from annotations.models import ScoreConfig
from annotations.queues import forms, selectors, services, tasks
from annotations.queues import permissions as perms
from annotations.queues.models import QueueItem, Review, ReviewQueue, ReviewState
from annotations.views import review_context
from feedbackhub.outbox import enqueue_on_commit


def _messages(exc: ValidationError) -> dict[str, list[str]]:
    return exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}


@require_GET
def queue_list(request: HttpRequest) -> HttpResponse:
    """My queues (what is left for me in each), and for those who build queues, every queue."""
    ctx = {"mine": selectors.my_queues(request.user), "nav": "queues", "can_manage": perms.can_manage(request.user)}
    if ctx["can_manage"]:
        ctx["queues"] = ReviewQueue.objects.filter(is_archived=False).select_related("created_by")[:200]
    return render(request, "queues/list.html", ctx)


@require_http_methods(["GET", "POST"])
def queue_new(request: HttpRequest) -> HttpResponse:
    """Build a queue; opened from the conversation list, its filter comes along (``?from=<query string>``)."""
    perms.require_manage(request.user)
    if request.method == "POST":
        form = forms.QueueForm(request.POST, user=request.user)
        if form.is_valid():
            try:
                queue = services.queue_create(actor=request.user, spec=form.spec())
            except ValidationError as exc:
                for name, errors in _messages(exc).items():
                    form.add_error(name if name in form.fields else None, errors)
            else:
                return redirect(queue)
        status = 400
    else:
        initial = {"query_string": request.GET.get("from", "")}
        if request.GET.get("cluster"):
            initial.update(source_kind="cluster", source_value=request.GET["cluster"])
        form = forms.QueueForm(initial=initial, user=request.user)
        status = 200
    return render(request, "queues/new.html", {"form": form, "nav": "queues"}, status=status)


def _require_view(request: HttpRequest, queue: ReviewQueue) -> None:
    """A queue's page and agreement are for those who build queues and for its reviewers."""
    if not perms.is_reviewer(queue, request.user):
        perms.require_manage(request.user)


@require_GET
def queue_detail(request: HttpRequest, queue_id: int) -> HttpResponse:
    queue = get_object_or_404(ReviewQueue, pk=queue_id)
    _require_view(request, queue)
    data = selectors.agreement_data(queue)
    ctx = {
        "queue": queue, "nav": "queues", "progress": selectors.queue_progress(queue),
        "rubric": selectors.queue_rubric(queue), "agreement": selectors.agreement_report(queue, data),
        "to_adjudicate": selectors.items_to_adjudicate(queue, data)[:100],
        "adjudicated": QueueItem.objects.filter(queue=queue, adjudicated_at__isnull=False)
        .select_related("adjudicated_by").order_by("-adjudicated_at")[:50],
        "can_manage": perms.can_manage(request.user), "can_adjudicate": perms.can_adjudicate(request.user),
        "is_reviewer": perms.is_reviewer(queue, request.user),
    }
    return render(request, "queues/detail.html", ctx)


@require_POST
def queue_archive(request: HttpRequest, queue_id: int) -> HttpResponse:
    queue = get_object_or_404(ReviewQueue, pk=queue_id)
    services.queue_set_archived(actor=request.user, queue=queue, archived=request.POST.get("archived") != "0")
    return redirect(queue)


@require_GET
def agreement_json(request: HttpRequest, queue_id: int) -> JsonResponse:
    queue = get_object_or_404(ReviewQueue, pk=queue_id)
    _require_view(request, queue)
    return JsonResponse(selectors.agreement_report(queue), json_dumps_params={"indent": 1})


# --- working ---------------------------------------------------------------------------------------------------------


def _work(request: HttpRequest, queue: ReviewQueue, review: Review, *, errors: dict | None = None,
          answers: dict | None = None, status: int = 200) -> HttpResponse:
    """The review workspace of the item's conversation with the queue's bar and rubric above it."""
    item = review.item
    ctx = review_context(request, item.conversation_id)
    rubric = selectors.queue_rubric(queue)
    # The reviewer's scores of the reply, from what the workspace read already (their own are never hidden).
    scores = next((tv.scores for tv in ctx["data"].turns if tv.turn.pk == item.turn_id), [])
    given = {s.config_id: s.display for s in scores if s.author_id == request.user.pk and not s.is_gold}
    answers = answers or {}
    fields = [{"config": c, "name": review_services.field_name(c),
               "value": answers.get(review_services.field_name(c), given.get(c.pk, "")),
               "errors": (errors or {}).get(review_services.field_name(c), [])} for c in rubric]
    mine = selectors.my_progress(queue, request.user)
    ctx.update(queue=queue, item=item, review=review, rubric_fields=fields, mine=mine, nav="queues",
               form_errors=(errors or {}).get("__all__", []) + (errors or {}).get("item", []))
    return render(request, "queues/work.html", ctx, status=status)


@require_GET
def work_next(request: HttpRequest, queue_id: int) -> HttpResponse:
    """The reviewer's next item in one request: the hold is taken and the workspace rendered."""
    queue = get_object_or_404(selectors.with_reviewer(request.user), pk=queue_id, is_archived=False)
    review = services.next_review(queue=queue, reviewer=request.user)
    if review is None:
        return render(request, "queues/done.html", {"queue": queue, "nav": "queues"})
    # While they work on this one, a worker renders the items they would get next (annotations.queues.prefetch).
    enqueue_on_commit(tasks.warm_upcoming, queue.pk, request.user.pk)
    return _work(request, queue, review)


def _answers(queue: ReviewQueue, post) -> dict[ScoreConfig, str]:  # noqa: ANN001
    return {c: post[review_services.field_name(c)] for c in selectors.queue_rubric(queue)
            if review_services.field_name(c) in post}


@require_POST
def work_complete(request: HttpRequest, queue_id: int, item_id: int) -> HttpResponse:
    queue = get_object_or_404(ReviewQueue, pk=queue_id)
    try:
        services.review_complete(queue=queue, item_id=item_id, reviewer=request.user,
                                 answers=_answers(queue, request.POST))
    except ValidationError as exc:
        review = Review.objects.select_related("item").filter(item_id=item_id, reviewer=request.user).first()
        if review is None or review.state in (ReviewState.DONE, ReviewState.RELEASED):
            # Not theirs to complete (any more): say why and go on with their next item.
            for message in _messages(exc).get("item", []):
                messages.warning(request, message)
            return redirect("queues:next", queue_id=queue.pk)
        return _work(request, queue, review, errors=_messages(exc), answers=request.POST.dict(), status=400)
    return redirect("queues:next", queue_id=queue.pk)


@require_POST
def work_skip(request: HttpRequest, queue_id: int, item_id: int) -> HttpResponse:
    queue = get_object_or_404(ReviewQueue, pk=queue_id)
    try:
        services.review_skip(queue=queue, item_id=item_id, reviewer=request.user)
    except ValidationError:
        pass  # already done, released and taken over: either way the next item is what they want
    return redirect("queues:next", queue_id=queue.pk)


# --- adjudication ----------------------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def adjudicate(request: HttpRequest, queue_id: int, item_id: int) -> HttpResponse:
    """The reviewers' work on one reply side by side; the expert picks or merges it into the gold annotation."""
    queue = get_object_or_404(ReviewQueue, pk=queue_id)
    perms.require_adjudicate(request.user)
    item = get_object_or_404(QueueItem.objects.select_related("turn", "conversation"), pk=item_id, queue=queue)
    errors: dict = {}
    if request.method == "POST":
        try:
            ids = [int(v) for v in request.POST.getlist("annotations")]
        except ValueError:
            errors = {"annotations": ["Choose annotations from the list."]}
        else:
            try:
                services.adjudicate(actor=request.user, queue=queue, item_id=item.pk, annotation_ids=ids,
                                    answers=_answers(queue, request.POST), note=request.POST.get("note", ""))
            except ValidationError as exc:
                errors = _messages(exc)
            else:
                return redirect(f"{reverse('queues:detail', args=[queue.pk])}#adjudicated")
    rubric = selectors.queue_rubric(queue)
    work = selectors.reviewers_work(queue, item)
    fields = []
    for config in rubric:
        values = {w.scores[config.pk].display for w in work if config.pk in w.scores}
        fields.append({"config": config, "name": review_services.field_name(config),
                       "given": [(w.username, w.scores[config.pk].display) for w in work if config.pk in w.scores],
                       "value": request.POST.get(review_services.field_name(config),
                                                 next(iter(values)) if len(values) == 1 else ""),
                       "errors": errors.get(review_services.field_name(config), [])})
    data = selectors.agreement_data(queue)
    ctx = {"queue": queue, "item": item, "work": work, "fields": fields, "nav": "queues",
           "agreement": round(selectors.item_agreement(data, item.pk), 4),
           "reply_text": item.turn.content, "errors": errors,
           "chosen": {int(v) for v in request.POST.getlist("annotations") if v.isdigit()}}
    return render(request, "queues/adjudicate.html", ctx, status=400 if errors else 200)


# --- rubric fields ---------------------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def rubric(request: HttpRequest) -> HttpResponse:
    """The rubric fields (current versions and their history); define one or a new version of one."""
    perms.require_manage(request.user)
    form = forms.ScoreConfigForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                review_services.score_config_save(
                    actor=request.user, key=data["key"], name=data["name"], description=data["description"],
                    kind=data["kind"], minimum=data["minimum"], maximum=data["maximum"], step=data["step"],
                    options=data["options"],
                )
            except ValidationError as exc:
                for name, msgs in _messages(exc).items():
                    form.add_error(name if name in form.fields else None, msgs)
            else:
                return redirect("queues:rubric")
    configs = ScoreConfig.objects.order_by("key", "-version")
    return render(request, "queues/rubric.html", {"form": form, "configs": configs, "nav": "queues"}, status=status)

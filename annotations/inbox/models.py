"""The inbox: one row per thing a user should look at (a mention, a reply in their thread, a cluster routed to them,
examples awaiting their approval).

Rows are written only by ``annotations.inbox.services``. What the item is about is kept as text (``subject``,
``excerpt``) and a link (``url``) made when it was created, so the inbox page reads one table; the foreign keys are
there so that an item goes when what it points at is deleted.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotations.models import Annotation, AnnotationReply
from sessions.models import Conversation


class NotificationKind(models.TextChoices):
    MENTION = "mention", "Mention"
    REPLY = "reply", "Reply in your thread"
    ROUTED = "routed", "Cluster routed to you"
    APPROVAL = "approval", "Awaiting your approval"


class Notification(models.Model):
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=NotificationKind.choices)
    subject = models.CharField(max_length=200, help_text="What it is about: a conversation, cluster or dataset.")
    excerpt = models.CharField(max_length=300, blank=True, help_text="The start of the comment or reply.")
    url = models.CharField(max_length=500, help_text="Where the item opens: the exact card, cluster or example.")
    conversation = models.ForeignKey(Conversation, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    annotation = models.ForeignKey(Annotation, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    reply = models.ForeignKey(AnnotationReply, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    #: The cluster or (first) example an item is about; those live in feature apps the core does not reference.
    object_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["recipient", "-created_at", "-id"], name="notification_recipient_new"),
            # The header's unread count, polled by every open page: a count over this small partial index.
            models.Index(fields=["recipient"], condition=models.Q(read_at__isnull=True), name="notification_unread"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for user {self.recipient_id}: {self.subject}"

    @property
    def is_unread(self) -> bool:
        return self.read_at is None

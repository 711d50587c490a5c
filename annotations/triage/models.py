"""Triage: clusters of similar negative feedback that moderators work through as one item each.

A :class:`Cluster` groups :class:`recall.FeedbackItem` rows through :class:`ClusterMember` (an item belongs to at
most one cluster; the member row is also the "already clustered" marker, committed together with its assignment).
The clustering job (``job.triage_run``) writes members, centroids and the derived numbers (size, growth...);
moderators and experts change status, owner, claim, routing and guidance through ``actions``.
:class:`ClusterProposal` holds the periodic re-cluster's merge and split suggestions until someone decides
(``proposals``).

Rows are written only by ``annotations.triage.job``, ``actions`` and ``proposals``.

Priority (higher first), computed by the database from the cluster's own numbers (``priority_expression``)::

    priority = 10·ln(1 + size) + 15·ln(1 + growth_24h) + 5·max_severity + 10·negative_share

size: members; growth_24h: members whose feedback is from the last 24 hours; max_severity: highest
``annotations.Tag.severity`` (1 low .. 4 critical, 0 untagged) among the members' tags; negative_share: the share
of members that are negative signals. Ten new reports in a day outrank a hundred old ones; severity breaks ties
between clusters of similar size.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Cast, Ln, Round
from pgvector.django import VectorField

DIMENSIONS = 384


def priority_expression() -> models.Func:
    """The queue's sort key (module docstring), as the expression of the generated ``Cluster.priority`` column:
    written once, kept current by the database whatever writes the numbers (the job's set-based statements or
    ``save()``)."""
    size = Cast("size", models.FloatField())
    negative_share = models.Case(
        models.When(size__gt=0, then=Cast("negative_count", models.FloatField()) / size),
        default=models.Value(0.0),
        output_field=models.FloatField(),
    )
    score = (
        10 * Ln(1 + size)
        + 15 * Ln(1 + Cast("growth_24h", models.FloatField()))
        + 5 * Cast("max_severity", models.FloatField())
        + 10 * negative_share
    )
    return Cast(Round(Cast(score, models.DecimalField(max_digits=30, decimal_places=10)), 4), models.FloatField())


class Status(models.TextChoices):
    NEW = "new", "New"
    TRIAGING = "triaging", "Triaging"
    NEEDS_EXPERT = "needs_expert", "Needs expert"
    CORRECTED = "corrected", "Corrected"
    CLOSED = "closed", "Closed"


class Resolution(models.TextChoices):
    NONE = "", "—"
    FIXED = "fixed", "Fixed"
    WONT_FIX = "wont_fix", "Won't fix"
    DUPLICATE = "duplicate", "Duplicate"


class Cluster(models.Model):
    """One problem: similar feedback items, worked on as one triage item."""

    #: A representative feedback sentence (``summaries.title``); the keywords are ``terms``.
    title = models.CharField(max_length=200, default="Untitled cluster")
    terms = ArrayField(models.CharField(max_length=80), default=list, blank=True)
    # Database defaults as well: the job and the benchmark write cluster rows with COPY.
    samples = ArrayField(models.TextField(), default=list, blank=True, db_default=[],
                         help_text="Distinct snippets of the member feedback nearest the centroid, nearest first.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    resolution = models.CharField(max_length=16, choices=Resolution.choices, blank=True, default="")
    # No indexes on the foreign keys of a cluster: the job rewrites thousands of cluster rows a minute and every
    # index costs an insertion per rewrite, while a few thousand open clusters filter fast enough without them.
    duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                     db_index=False)
    #: Not closed: new items may join it, and it is in the default queue.
    is_open = models.BooleanField(default=True)

    # Unit-length mean of the members' vectors, and the plain sum it is derived from (updated per batch).
    centroid = VectorField(dimensions=DIMENSIONS)
    vector_sum = VectorField(dimensions=DIMENSIONS)

    size = models.PositiveIntegerField(default=0)
    negative_count = models.PositiveIntegerField(default=0)
    growth_24h = models.PositiveIntegerField(default=0, help_text="Members whose feedback is from the last 24 hours.")
    max_severity = models.PositiveSmallIntegerField(default=0, help_text="Highest severity of the members' tags.")
    environments = ArrayField(models.CharField(max_length=16), default=list, blank=True)
    model_versions = ArrayField(models.CharField(max_length=128), default=list, blank=True)
    tag_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    representative_ids = ArrayField(models.BigIntegerField(), default=list, blank=True,
                                    help_text="Feedback item ids nearest the centroid, nearest first.")
    representative_distances = ArrayField(models.FloatField(), default=list, blank=True,
                                          help_text="Their member distances, in the same order (so the job can "
                                                    "merge a batch's nearest members in without reading members).")
    priority = models.GeneratedField(expression=priority_expression(), output_field=models.FloatField(),
                                     db_persist=True)
    titled_size = models.PositiveIntegerField(default=0, help_text="Size when the title was last computed.")

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="triage_clusters", db_index=False)
    claimed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", db_index=False)
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    routed_group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                     db_index=False)
    guidance = models.TextField(blank=True, help_text="Returned by the recall API with this cluster's cases.")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    last_item_at = models.DateTimeField(null=True, blank=True)
    #: When the oldest member's feedback was given: the cluster's age and SLA count from it, not from created_at
    #: (a backlog from June clustered today is months old).
    oldest_item_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["-priority", "-id"], name="cluster_priority",
                         condition=models.Q(is_open=True)),
            models.Index(fields=["status", "-priority", "-id"], name="cluster_status_priority"),
            models.Index(fields=["updated_at"], name="cluster_updated"),
            # No HNSW index on the centroid: every batch rewrites the touched clusters' rows, and each new row
            # version costs an HNSW insert (1.5 s for 200 clusters on the benchmark machine). The job compares
            # with the open centroids exactly in numpy instead (docs/triage.md).
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"


class ClusterMember(models.Model):
    """A feedback item's place in a cluster; its existence marks the item as clustered."""

    class Via(models.TextChoices):
        JOB = "job", "Clustering job"
        MOVED = "moved", "Moved by hand"
        MERGED = "merged", "Merged"
        SPLIT = "split", "Split out"

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="members", db_index=False)
    item = models.OneToOneField("recall.FeedbackItem", on_delete=models.CASCADE, related_name="triage_member")
    distance = models.FloatField(help_text="Cosine distance to the cluster's centroid when the item joined.")
    item_at = models.DateTimeField(help_text="When the feedback was given (or the item created).")
    via = models.CharField(max_length=8, choices=Via.choices, default=Via.JOB)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["cluster", "distance", "item"], name="cluster_member_nearest"),
            # The job moves growth_24h along with time by taking off the members whose feedback time lies between
            # its previous 24-hour cut and the new one: a range on item_at alone (a minute's worth of rows).
            models.Index(fields=["item_at"], name="cluster_member_aging"),
        ]

    def __str__(self) -> str:
        return f"item {self.item_id} in cluster {self.cluster_id}"


class ProposalKind(models.TextChoices):
    MERGE = "merge", "Merge"
    SPLIT = "split", "Split"


class ProposalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"
    STALE = "stale", "Out of date"


class ClusterProposal(models.Model):
    """A suggestion: merge ``cluster`` into ``other``, or split ``item_ids`` out of ``cluster`` into a new cluster."""

    kind = models.CharField(max_length=8, choices=ProposalKind.choices)
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="proposals")
    other = models.ForeignKey(Cluster, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    item_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    score = models.FloatField(help_text="Merge: centroid distance. Split: distance between the two parts.")
    status = models.CharField(max_length=8, choices=ProposalStatus.choices, default=ProposalStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["score", "id"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "cluster", "other"], condition=models.Q(status="pending"),
                                    name="cluster_proposal_pending_uniq", nulls_distinct=False),
        ]

    def __str__(self) -> str:
        return f"{self.kind} proposal #{self.pk} ({self.status})"


class ClusterEvent(models.Model):
    """Who did what to a cluster, when (claims, status changes, routing, merges, moves, tagging)."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    action = models.CharField(max_length=32)
    detail = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["cluster", "-at"], name="cluster_event_at")]

    def __str__(self) -> str:
        return f"{self.action} on cluster {self.cluster_id}"


class ClusterTagging(models.Model):
    """An annotation the bulk "tag all members" action created; its feedback item is not clustered again."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="+")
    annotation = models.OneToOneField("annotations.Annotation", on_delete=models.CASCADE, related_name="+")

    def __str__(self) -> str:
        return f"annotation {self.annotation_id} from cluster {self.cluster_id}"


class Cursor(models.Model):
    """Where the clustering job got to: the highest embedding id it has looked at (so a run reads only new vectors
    instead of anti-joining every item with the members)."""

    name = models.CharField(max_length=40, unique=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"

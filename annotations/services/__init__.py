"""Writes of the review workspace. Every function checks permissions, validates its input, records an AuditEvent
and, for objects that carry a ``version``, refuses a save based on an older version with ``Conflict``.

One module per job: ``annotation`` (annotations and their threads), ``correction`` (suggestions decided, corrected
replies, re-anchoring), ``scores`` (rubric fields and reviewers' scores), on the shared steps of a versioned
write in ``versioning``."""

from annotations.services.annotation import (
    annotation_create,
    annotation_delete,
    annotation_restore,
    annotation_set_status,
    annotation_update,
    reply_create,
    reply_delete,
    reply_update,
)
from annotations.services.correction import (
    annotations_reanchor,
    correction_approve,
    correction_save,
    suggestion_decide,
)
from annotations.services.scores import clean_score, field_name, score_config_save, scores_save
from annotations.services.versioning import MAX_BODY_CHARS, Conflict, audit_conversation

__all__ = [
    "MAX_BODY_CHARS",
    "Conflict",
    "annotation_create",
    "annotation_delete",
    "annotation_restore",
    "annotation_set_status",
    "annotation_update",
    "audit_conversation",
    "clean_score",
    "field_name",
    "score_config_save",
    "scores_save",
    "annotations_reanchor",
    "correction_approve",
    "correction_save",
    "reply_create",
    "reply_delete",
    "reply_update",
    "suggestion_decide",
]

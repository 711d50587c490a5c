"""Writes of rubric scores and of the score configurations (rubric fields) they follow."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max

from annotations import permissions as perms
from annotations.models import Score, ScoreConfig, ScoreKind
from annotations.services.versioning import audit_conversation
from sessions.models import Turn, TurnRole

YES = {"yes", "true", "1", "on"}
NO = {"no", "false", "0", "off"}


def field_name(config: ScoreConfig) -> str:
    """The form field (and error key) of a rubric field."""
    return f"score_{config.pk}"


def clean_score(config: ScoreConfig, raw: object) -> tuple[float | None, str]:
    """``(value, option)`` of a reviewer's answer for ``config``; ValidationError naming the field otherwise."""
    text = "" if raw is None else str(raw).strip()
    name = field_name(config)
    if text == "":
        raise ValidationError({name: f"{config.name}: choose a value."})
    if config.kind == ScoreKind.CATEGORICAL:
        if text not in config.options:
            raise ValidationError({name: f"{config.name}: {text!r} is not one of {', '.join(config.options)}."})
        return None, text
    if config.kind == ScoreKind.BOOLEAN:
        if text.lower() in YES:
            return 1.0, ""
        if text.lower() in NO:
            return 0.0, ""
        raise ValidationError({name: f"{config.name}: answer yes or no."})
    try:
        value = float(text)
    except ValueError:
        raise ValidationError({name: f"{config.name}: {text!r} is not a number."}) from None
    if not math.isfinite(value):
        raise ValidationError({name: f"{config.name}: {text!r} is not a number."})
    if config.minimum is not None and value < config.minimum or config.maximum is not None and value > config.maximum:
        raise ValidationError({name: f"{config.name}: between {config.minimum:g} and {config.maximum:g}."})
    if config.step and not math.isclose((value - (config.minimum or 0)) / config.step,
                                        round((value - (config.minimum or 0)) / config.step), abs_tol=1e-9):
        raise ValidationError({name: f"{config.name}: in steps of {config.step:g}."})
    return value, ""


@transaction.atomic
def scores_save(*, actor, turn: Turn, answers: Mapping[ScoreConfig, object], gold: bool = False) -> list[Score]:
    """Store ``actor``'s answers (config -> raw value) for an assistant reply, replacing their earlier ones; every
    answer is checked first, so an invalid one stores nothing. Gold scores (the adjudicator's final values, one per
    reply and field) are for domain experts and audited."""
    if gold:
        perms.require_decide(actor)
    else:
        perms.require_annotate(actor)
    if turn.role != TurnRole.ASSISTANT:
        raise ValidationError({"turn": "Only assistant replies are scored."})
    errors: dict[str, Any] = {}
    cleaned = {}
    for config, raw in answers.items():
        try:
            cleaned[config] = clean_score(config, raw)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    saved = []
    for config, (value, option) in cleaned.items():
        lookup = {"turn": turn, "config": config, "is_gold": gold}
        if not gold:
            lookup["author"] = actor
        score, _ = Score.objects.update_or_create(
            **lookup, defaults={"conversation_id": turn.conversation_id, "value": value, "option": option,
                                "author": actor},
        )
        saved.append(score)
    if gold and saved:
        audit_conversation(actor=actor, conversation_id=turn.conversation_id, action="gold_scores",
                           object_type="turn", object_id=turn.pk,
                           after={s.config.key: s.display for s in saved})
    return saved


CONFIG_FIELDS = ("name", "description", "kind", "minimum", "maximum", "step", "options")


def check_config(*, kind: str, minimum: float | None, maximum: float | None, options: list[str]) -> None:
    if kind == ScoreKind.NUMERIC:
        if minimum is None or maximum is None or minimum >= maximum:
            raise ValidationError({"maximum": "A numeric field needs a minimum below its maximum."})
    if kind == ScoreKind.CATEGORICAL:
        if len(options) < 2 or len(set(options)) != len(options):
            raise ValidationError({"options": "A categorical field needs at least two different options."})


@transaction.atomic
def score_config_save(*, actor, key: str, **fields: Any) -> ScoreConfig:
    """Create a rubric field, or a new version of ``key`` when its definition changes (scores given under the old
    version keep it). Saving the same definition again changes nothing."""
    if not perms.can_decide(actor) and not perms.can_annotate(actor):
        raise PermissionDenied("Only moderators and domain experts define rubric fields.")
    fields.setdefault("options", [])
    fields["options"] = [o.strip() for o in fields["options"] if o.strip()]
    check_config(kind=fields["kind"], minimum=fields.get("minimum"), maximum=fields.get("maximum"),
                 options=fields["options"])
    current = ScoreConfig.objects.select_for_update().filter(key=key, is_current=True).first()
    if current is not None:
        if all(getattr(current, f) == fields.get(f, getattr(current, f)) for f in CONFIG_FIELDS):
            return current
        if not current.scores.exists() and not current.queues.exists():
            for name in CONFIG_FIELDS:
                if name in fields:
                    setattr(current, name, fields[name])
            current.save()
            return current
        current.is_current = False
        current.save(update_fields=["is_current"])
    version = (ScoreConfig.objects.filter(key=key).aggregate(v=Max("version"))["v"] or 0) + 1
    return ScoreConfig.objects.create(key=key, version=version, created_by=actor, is_current=True,
                                      **{f: fields[f] for f in CONFIG_FIELDS if f in fields})

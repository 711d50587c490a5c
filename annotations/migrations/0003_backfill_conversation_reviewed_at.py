"""Conversations reviewed before the list had a Reviewed column: the first annotation or correction on each."""

from django.db import migrations

BACKFILL = """
UPDATE conversations_conversation c SET reviewed_at = first.at
FROM (
    SELECT conversation_id, min(created_at) AS at FROM (
        SELECT conversation_id, created_at FROM annotations_annotation
        UNION ALL
        SELECT conversation_id, created_at FROM annotations_correction
    ) work GROUP BY conversation_id
) first
WHERE c.id = first.conversation_id AND c.reviewed_at IS NULL
"""


class Migration(migrations.Migration):
    dependencies = [
        ("annotations", "0002_seed_tags"),
        ("conversations", "0006_conversation_reviewed_at"),
    ]

    operations = [migrations.RunSQL(BACKFILL, migrations.RunSQL.noop)]

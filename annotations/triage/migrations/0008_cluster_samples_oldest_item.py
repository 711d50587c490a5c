import django.contrib.postgres.fields
from django.db import migrations, models

# The summaries are pure functions of text (no models): the backfill uses them so existing clusters read the same
# as the ones the job titles from now on.
from annotations.triage import summaries

#: Texts per cluster the job titles from (job.TITLE_SAMPLE).
SAMPLE = 12

OLDEST_SQL = """
UPDATE triage_cluster c SET oldest_item_at = m.oldest
FROM (SELECT cluster_id, min(item_at) AS oldest FROM triage_clustermember GROUP BY cluster_id) m
WHERE c.id = m.cluster_id
"""

NEAREST_TEXTS_SQL = """
SELECT c.id, s.text FROM triage_cluster c
CROSS JOIN LATERAL (SELECT i.text, m.distance, m.item_id FROM triage_clustermember m
                    JOIN recall_feedbackitem i ON i.id = m.item_id
                    WHERE m.cluster_id = c.id ORDER BY m.distance, m.item_id LIMIT %s) s
WHERE c.is_open
ORDER BY c.id, s.distance, s.item_id
"""


def summarise(apps, schema_editor):
    """Title sentences and snippets for the open clusters (the keyword titles stay as their terms)."""
    texts: dict[int, list[str]] = {}
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(NEAREST_TEXTS_SQL, [SAMPLE])
        for cluster_id, text in cursor.fetchall():
            texts.setdefault(cluster_id, []).append(text)
    Cluster = apps.get_model("triage", "Cluster")
    changed = []
    for cluster in Cluster.objects.filter(pk__in=list(texts)).only("pk", "title", "samples"):
        sample = texts[cluster.pk]
        cluster.title = summaries.title(sample)[:200] or cluster.title
        cluster.samples = summaries.snippets(sample, title=cluster.title)
        changed.append(cluster)
    Cluster.objects.bulk_update(changed, ["title", "samples"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [
        ("triage", "0007_cluster_priority_generated"),
    ]

    operations = [
        migrations.AddField(
            model_name="cluster",
            name="oldest_item_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="cluster",
            name="samples",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.TextField(),
                blank=True,
                db_default=[],
                default=list,
                help_text="Distinct snippets of the member feedback nearest the centroid, nearest first.",
                size=None,
            ),
        ),
        migrations.RunSQL(OLDEST_SQL, migrations.RunSQL.noop),
        migrations.RunPython(summarise, migrations.RunPython.noop),
    ]

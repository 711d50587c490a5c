from django.db import migrations, models


class Migration(migrations.Migration):
    """A flag for items waiting for a vector, so the embed task need not anti-join every item with every vector.

    Existing items start as done, then the ones with no vector of their current text are flagged."""

    dependencies = [("recall", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="feedbackitem", name="embedding_pending", field=models.BooleanField(default=False)
        ),
        migrations.RunSQL(
            "UPDATE recall_feedbackitem i SET embedding_pending = true WHERE NOT EXISTS ("
            "SELECT 1 FROM recall_embedding e WHERE e.item_id = i.id AND e.text_hash = i.text_hash)",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.AlterField(
            model_name="feedbackitem", name="embedding_pending", field=models.BooleanField(default=True)
        ),
        migrations.AddIndex(
            model_name="feedbackitem",
            index=models.Index(
                condition=models.Q(("embedding_pending", True)), fields=["id"], name="feedback_item_embed_pending"
            ),
        ),
    ]

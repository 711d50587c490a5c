"""The outbox moves from the triage app into the project core: the table is taken over as it is, then renamed."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("feedbackhub", "0003_api_tokens"),
        ("triage", "0005_job_and_queue_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="OutboxTask",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("task_name", models.CharField(max_length=200)),
                        ("args", models.JSONField(blank=True, default=list)),
                        ("kwargs", models.JSONField(blank=True, default=dict)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("attempts", models.PositiveIntegerField(default=0)),
                        ("last_error", models.TextField(blank=True)),
                    ],
                    options={"ordering": ["id"], "db_table": "triage_outboxtask"},
                ),
            ],
        ),
        migrations.AlterModelTable(name="outboxtask", table=None),
    ]

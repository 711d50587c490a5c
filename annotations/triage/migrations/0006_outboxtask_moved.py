"""The outbox model now belongs to the project core (feedbackhub 0004 took its table over)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("triage", "0005_job_and_queue_indexes"),
        ("feedbackhub", "0004_outboxtask"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="OutboxTask")]),
    ]

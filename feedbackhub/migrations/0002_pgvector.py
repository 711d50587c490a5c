from django.db import migrations


class Migration(migrations.Migration):
    """pgvector in every database, whether or not its template already had it."""

    dependencies = [("feedbackhub", "0001_roles")]
    operations = [
        migrations.RunSQL("CREATE EXTENSION IF NOT EXISTS vector", reverse_sql=migrations.RunSQL.noop),
    ]

# The app-version filter walks its own (app_version, -started_at, -id) index like the other equality filters.
# Built CONCURRENTLY: the conversation table is large and imports keep writing to it.

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("conversations", "0002_drop_duplicate_fk_indexes"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="conversation",
            index=models.Index(fields=["app_version", "-started_at", "-id"], name="conversation_app_started"),
        ),
    ]

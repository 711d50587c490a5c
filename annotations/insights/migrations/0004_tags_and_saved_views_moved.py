"""Conversation tags and saved views now belong to the conversations app (conversations 0004 took their tables)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("insights", "0003_category_rollup_grain"),
        ("conversations", "0004_conversation_tags_and_saved_views"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.DeleteModel(name="SessionTagging"),
            migrations.DeleteModel(name="SavedView"),
            migrations.DeleteModel(name="SessionTag"),
        ]),
    ]

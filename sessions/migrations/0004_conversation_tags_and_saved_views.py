"""Conversation tags and saved views move from the insights app to the conversations app, which owns the list they
label and filter: the tables are taken over as they are (state only), then renamed to this app's names."""

import django.core.validators
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0003_conversation_app_started"),
        ("insights", "0003_category_rollup_grain"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ConversationTag",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(max_length=80, unique=True)),
                        ("slug", models.SlugField(max_length=80, unique=True)),
                        ("colour", models.CharField(default="#4f6bed", max_length=7, validators=[
                            django.core.validators.RegexValidator("^#[0-9a-fA-F]{6}$", "Use a hex colour such as #4f6bed.")])),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("created_by", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
                    ],
                    options={"ordering": ["name"], "db_table": "insights_sessiontag"},
                ),
                migrations.CreateModel(
                    name="SavedView",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(max_length=120)),
                        ("slug", models.SlugField(max_length=140, unique=True)),
                        ("query_string", models.TextField(blank=True, help_text="The list's query string, without cursors or '?'.")),
                        ("shared", models.BooleanField(default=False, help_text="Listed for everyone, not only the owner.")),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        ("owner", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="saved_views", to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        "ordering": ["name", "id"],
                        "constraints": [models.UniqueConstraint(fields=("owner", "name"), name="savedview_owner_name_uniq")],
                        "db_table": "insights_savedview",
                    },
                ),
                migrations.CreateModel(
                    name="ConversationTagging",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("tagged_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("conversation", models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="taggings", to="conversations.conversation")),
                        ("tag", models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="taggings", to="conversations.conversationtag")),
                        ("tagged_by", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        "indexes": [models.Index(fields=["tag", "conversation"], name="sessiontagging_tag_conv")],
                        "constraints": [models.UniqueConstraint(fields=("conversation", "tag"), name="sessiontagging_conv_tag_uniq")],
                        "db_table": "insights_sessiontagging",
                    },
                ),
            ],
        ),
        migrations.AlterModelTable(name="conversationtag", table=None),
        migrations.AlterModelTable(name="savedview", table=None),
        migrations.AlterModelTable(name="conversationtagging", table=None),
    ]

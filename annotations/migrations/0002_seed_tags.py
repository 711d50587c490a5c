"""Seed the feedback taxonomy with useful defaults; admins edit or extend it afterwards."""

from django.db import migrations

DEFAULT_TAGS = [
    # name, slug, description, colour, hotkey, severity, group
    ("factually incorrect", "factually-incorrect", "States something false or outdated.", "#e5484d", "1", 3, "Accuracy"),
    ("too vague", "too-vague", "Generic or non-committal where a specific answer was possible.", "#f5a524", "2", 1,
     "Helpfulness"),
    ("wrong tone", "wrong-tone", "Rude, condescending, overly casual or otherwise off-register.", "#8e4ec6", "3", 1,
     "Style"),
    ("incomplete", "incomplete", "Leaves out part of what was asked or a necessary step.", "#f76b15", "4", 2,
     "Helpfulness"),
    ("misread intent", "misread-intent", "Answers a different question than the user asked.", "#0090ff", "5", 2,
     "Helpfulness"),
    ("unsafe", "unsafe", "Harmful, non-compliant or leaks private data.", "#ce2c31", "6", 4, "Safety"),
    ("unsupported claim/source", "unsupported-claim", "A claim without support, or a cited source that does not "
     "say so.", "#d6409f", "7", 3, "Accuracy"),
    ("formatting", "formatting", "Layout, markup, lists, code blocks or length get in the way.", "#12a594", "8", 1,
     "Style"),
]


def seed(apps, schema_editor):
    Tag = apps.get_model("annotations", "Tag")
    for name, slug, description, colour, hotkey, severity, group in DEFAULT_TAGS:
        Tag.objects.get_or_create(
            slug=slug,
            defaults={"name": name, "description": description, "colour": colour, "hotkey": hotkey,
                      "severity": severity, "group": group},
        )


def unseed(apps, schema_editor):
    apps.get_model("annotations", "Tag").objects.filter(slug__in=[t[1] for t in DEFAULT_TAGS]).delete()


class Migration(migrations.Migration):
    dependencies = [("annotations", "0001_review")]

    operations = [migrations.RunPython(seed, unseed)]

"""Cluster.priority becomes a generated column: the formula lives once, in the model."""

import django.db.models.expressions
import django.db.models.functions.comparison
import django.db.models.functions.math
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('triage', '0006_outboxtask_moved'),
    ]

    operations = [
        # A column cannot become a generated one in place: the indexes on it go, it is dropped and added back as a
        # stored generated column (which PostgreSQL computes for every existing row), and the indexes return.
        migrations.RemoveIndex(model_name="cluster", name="cluster_priority"),
        migrations.RemoveIndex(model_name="cluster", name="cluster_status_priority"),
        migrations.RemoveField(model_name="cluster", name="priority"),
        migrations.AddField(
            model_name="cluster",
            name="priority",
            field=models.GeneratedField(db_persist=True, expression=django.db.models.functions.comparison.Cast(django.db.models.functions.math.Round(django.db.models.functions.comparison.Cast(django.db.models.expressions.CombinedExpression(django.db.models.expressions.CombinedExpression(django.db.models.expressions.CombinedExpression(django.db.models.expressions.CombinedExpression(models.Value(10), '*', django.db.models.functions.math.Ln(django.db.models.expressions.CombinedExpression(models.Value(1), '+', django.db.models.functions.comparison.Cast('size', models.FloatField())))), '+', django.db.models.expressions.CombinedExpression(models.Value(15), '*', django.db.models.functions.math.Ln(django.db.models.expressions.CombinedExpression(models.Value(1), '+', django.db.models.functions.comparison.Cast('growth_24h', models.FloatField()))))), '+', django.db.models.expressions.CombinedExpression(models.Value(5), '*', django.db.models.functions.comparison.Cast('max_severity', models.FloatField()))), '+', django.db.models.expressions.CombinedExpression(models.Value(10), '*', models.Case(models.When(size__gt=0, then=django.db.models.expressions.CombinedExpression(django.db.models.functions.comparison.Cast('negative_count', models.FloatField()), '/', django.db.models.functions.comparison.Cast('size', models.FloatField()))), default=models.Value(0.0), output_field=models.FloatField()))), models.DecimalField(decimal_places=10, max_digits=30)), 4), models.FloatField()), output_field=models.FloatField()),
        ),
        migrations.AddIndex(
            model_name="cluster",
            index=models.Index(condition=models.Q(("is_open", True)), fields=["-priority", "-id"], name="cluster_priority"),
        ),
        migrations.AddIndex(
            model_name="cluster",
            index=models.Index(fields=["status", "-priority", "-id"], name="cluster_status_priority"),
        ),
    ]

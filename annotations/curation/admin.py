"""Admin views of curated datasets: for looking things up. Changes go through the dataset pages (services)."""

from django.contrib import admin

from annotations.curation.models import Dataset, DatasetVersion, Example, ExportJob


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "created_by", "created_at")
    search_fields = ("name", "slug")
    readonly_fields = ("slug", "created_by", "created_at", "updated_at")


@admin.register(Example)
class ExampleAdmin(admin.ModelAdmin):
    list_display = ("id", "dataset", "status", "proposed_by", "reviewed_by", "updated_at")
    list_filter = ("status", "dataset")
    list_select_related = ("dataset", "proposed_by", "reviewed_by")
    raw_id_fields = ("conversation", "turn", "correction")
    readonly_fields = ("proposed_by", "reviewed_by", "reviewed_at", "created_at", "updated_at")


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    list_display = ("dataset", "number", "example_count", "created_by", "created_at")
    list_select_related = ("dataset", "created_by")

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a version is immutable


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = ("id", "format", "dataset", "version", "status", "done", "total", "created_by", "created_at")
    list_filter = ("status", "format")
    list_select_related = ("dataset", "version", "created_by")

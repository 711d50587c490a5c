from django.contrib import admin

from annotations.models import Annotation, AnnotationReply, AuditEvent, Correction, Tag


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "group", "severity", "hotkey", "colour", "is_active"]
    list_filter = ["group", "severity", "is_active"]
    list_editable = ["hotkey", "colour", "is_active"]
    search_fields = ["name", "description"]
    prepopulated_fields = {"slug": ["name"]}


class ReadOnlyAdmin(admin.ModelAdmin):
    """Annotations change only through the review workspace's services (permissions, versions, audit)."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Annotation)
class AnnotationAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "author", "turn", "status", "anchor_state", "suggestion_state", "created_at"]
    list_filter = ["kind", "status", "anchor_state", "suggestion_state"]
    list_select_related = ["author", "turn"]


@admin.register(AnnotationReply)
class AnnotationReplyAdmin(ReadOnlyAdmin):
    list_display = ["id", "annotation", "author", "created_at"]


@admin.register(Correction)
class CorrectionAdmin(ReadOnlyAdmin):
    list_display = ["id", "turn", "status", "updated_by", "approved_by", "updated_at"]
    list_filter = ["status"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor", "action", "object_type", "object_id"]
    list_filter = ["action", "object_type"]

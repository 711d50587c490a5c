from django.contrib import admin

from sessions.models import ConversationTag, SavedView


@admin.register(ConversationTag)
class ConversationTagAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "colour", "created_by", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("created_by", "created_at")


@admin.register(SavedView)
class SavedViewAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "shared", "query_string", "updated_at")
    list_filter = ("shared",)
    search_fields = ("name", "query_string")
    raw_id_fields = ("owner",)

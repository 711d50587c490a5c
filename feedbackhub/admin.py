"""Admin for API tokens (the add form creates the token and shows its secret once, on the page that answers it) and
for the feedback widget's publishable keys (with a live preview)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse
from django.urls import reverse

from feedbackhub import auth_tokens, widget_keys
from feedbackhub.models import ApiScope, ApiToken, WidgetKey

ACCESS_FIELDS = ["sources", "all_sources", "gate", "gate_dataset", "gate_dataset_version"]


class _AccessForm(forms.ModelForm):
    """Sources, grant and gate are checked together (``auth_tokens.clean_access``)."""

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data
        try:
            data.update(auth_tokens.clean_access(
                scopes=data.get("scopes") or [], sources=data.get("sources") or [],
                all_sources=data.get("all_sources", False), gate=data.get("gate") or "",
                gate_dataset=data.get("gate_dataset") or "", gate_dataset_version=data.get("gate_dataset_version"),
            ))
        except ValidationError as exc:
            for field, errors in exc.error_dict.items():
                self.add_error(field if field in self.fields else None, errors)
        return data


class ApiTokenAddForm(_AccessForm):
    scopes = forms.MultipleChoiceField(
        choices=ApiScope.choices, widget=forms.CheckboxSelectMultiple, initial=[ApiScope.RECALL]
    )

    class Meta:
        model = ApiToken
        fields = ["name", "scopes", *ACCESS_FIELDS, "expires_at"]


class ApiTokenChangeForm(_AccessForm):
    scopes = forms.MultipleChoiceField(choices=ApiScope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiToken
        fields = ["name", "scopes", *ACCESS_FIELDS, "expires_at", "revoked_at"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "scope_list", "source_list", "gate_label", "created_by", "created_at",
                    "last_used_at", "expires_at", "revoked_at"]
    list_filter = ["revoked_at", "all_sources", "gate"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at"]
    actions = ["revoke"]

    @admin.display(description="Scopes")
    def scope_list(self, obj: ApiToken) -> str:
        return ", ".join(obj.scopes)

    @admin.display(description="Sources")
    def source_list(self, obj: ApiToken) -> str:
        return "all (grant)" if obj.all_sources else ", ".join(obj.sources)

    @admin.display(description="Gate")
    def gate_label(self, obj: ApiToken) -> str:
        return obj.gate_label

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = ApiTokenChangeForm if obj is not None else ApiTokenAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def save_model(self, request, obj: ApiToken, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            auth_tokens.api_token_forget(obj)
            return
        row, secret = auth_tokens.api_token_create(
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            created_by=request.user,
            expires_at=form.cleaned_data.get("expires_at"),
            **{name: form.cleaned_data[name] for name in ACCESS_FIELDS},
        )
        obj.pk, obj.prefix, obj.digest, obj.created_at = row.pk, row.prefix, row.digest, row.created_at
        # Kept on the request only: the page that answers this POST shows it; it is stored nowhere.
        request._new_api_token = secret

    def response_add(self, request, obj: ApiToken, post_url_continue=None):
        secret = getattr(request, "_new_api_token", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        messages.success(request, f"API token “{obj.name}” created. Copy it now: it is not shown again.")
        context = {
            **self.admin_site.each_context(request),
            "title": "API token created",
            "opts": self.opts,
            "token": obj,
            "secret": secret,
        }
        response = TemplateResponse(request, "admin/feedbackhub/apitoken/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset) -> None:
        for pk in queryset.filter(revoked_at__isnull=True).values_list("pk", flat=True):
            auth_tokens.api_token_revoke(token_id=pk)
        self.message_user(request, "Revoked.", messages.SUCCESS)


class WidgetKeyForm(forms.ModelForm):
    """Origins and categories are checked as the command checks them (``feedbackhub.widget_keys``)."""

    class Meta:
        model = WidgetKey
        fields = ["name", "source", "origins", "categories", "rate_per_minute", "revoked_at"]

    def clean_origins(self) -> list[str]:
        try:
            return widget_keys.clean_origins(self.cleaned_data.get("origins") or [])
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["origins"]) from None

    def clean_categories(self) -> list[str]:
        try:
            return widget_keys.clean_categories(self.cleaned_data.get("categories") or [])
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["categories"]) from None


@admin.register(WidgetKey)
class WidgetKeyAdmin(admin.ModelAdmin):
    """Publishable widget keys. The change page shows the snippet to paste and a live preview of the widget with
    the key's choices (it follows the categories field as it is edited; a preview sends nothing)."""

    form = WidgetKeyForm
    change_form_template = "admin/feedbackhub/widgetkey/change_form.html"
    list_display = ["name", "source", "origin_list", "rate_per_minute", "created_at", "revoked_at"]
    list_filter = ["revoked_at", "source"]
    search_fields = ["name", "key", "source"]
    readonly_fields = ["key", "created_by", "created_at"]
    actions = ["revoke"]

    @admin.display(description="Origins")
    def origin_list(self, obj: WidgetKey) -> str:
        return ", ".join(obj.origins)

    def save_model(self, request, obj: WidgetKey, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            widget_keys.forget(obj.key)
            return
        row = widget_keys.widget_key_create(
            name=form.cleaned_data["name"], source=form.cleaned_data["source"], origins=form.cleaned_data["origins"],
            categories=form.cleaned_data["categories"], rate_per_minute=form.cleaned_data["rate_per_minute"],
            created_by=request.user,
        )
        obj.pk, obj.key, obj.created_at = row.pk, row.key, row.created_at

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["widget_preview"] = {
            "categories": list(obj.categories) if obj else list(settings.WIDGET_DEFAULT_CATEGORIES),
        }
        context["widget_script_url"] = request.build_absolute_uri(reverse("ingest:widget_script"))
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset) -> None:
        for pk in queryset.filter(revoked_at__isnull=True).values_list("pk", flat=True):
            widget_keys.widget_key_revoke(key_id=pk)
        self.message_user(request, "Revoked.", messages.SUCCESS)

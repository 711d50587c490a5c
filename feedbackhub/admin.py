"""Admin for API tokens: the add form creates the token and shows its secret once, on the page that answers it."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse

from feedbackhub import auth_tokens
from feedbackhub.models import ApiScope, ApiToken

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

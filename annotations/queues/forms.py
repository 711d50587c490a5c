"""Forms of review queues: building a queue, defining a rubric field, and the adjudicator's choice."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q

from annotations import reply_sources
from annotations.models import ScoreConfig, ScoreKind
from annotations.queues.models import Mode, ReplyScope, SourceKind
from annotations.queues.services import QueueSpec
from feedbackhub import roles
from sessions.models import SavedView


class ReviewerChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj) -> str:  # noqa: ANN001
        return obj.get_username()


class QueueForm(forms.Form):
    name = forms.CharField(max_length=120)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                                  label="Instructions for reviewers")
    source_kind = forms.ChoiceField(label="Replies from", widget=forms.RadioSelect)
    query_string = forms.CharField(required=False, max_length=4000, label="List filter (query string)",
                                   help_text="The list's query string, e.g. environment=production&negative=on.")
    saved_view = forms.ModelChoiceField(queryset=SavedView.objects.none(), required=False)
    source_value = forms.ChoiceField(required=False, label="Triage cluster", choices=[])
    reply_scope = forms.ChoiceField(choices=ReplyScope.choices, initial=ReplyScope.ALL, label="Which replies")
    mode = forms.ChoiceField(choices=Mode.choices, initial=Mode.SNAPSHOT, widget=forms.RadioSelect)
    reviews_per_item = forms.TypedChoiceField(
        coerce=int, initial=1, label="Reviews per reply",
        choices=[(1, "1"), (2, "2 (blind)"), (3, "3 (blind)")],
    )
    rubric = forms.ModelMultipleChoiceField(queryset=ScoreConfig.objects.filter(is_current=True), required=False,
                                            widget=forms.CheckboxSelectMultiple)
    reviewers = ReviewerChoiceField(queryset=get_user_model().objects.none(), required=False,
                                    widget=forms.CheckboxSelectMultiple)
    reviewer_role = forms.ChoiceField(required=False, label="And everyone with the role",
                                      choices=[("", "Nobody else"), (roles.MODERATOR, "Moderators"),
                                               (roles.DOMAIN_EXPERT, "Domain experts")])
    due_date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    lease_minutes = forms.IntegerField(min_value=1, max_value=24 * 60, initial=30, label="Hold an open item for (min)")
    adjudication_threshold = forms.FloatField(
        min_value=0.0, max_value=1.0, initial=1.0, label="Adjudicate items with agreement below",
        help_text="Share of rubric fields, tags and highlights the reviewers agree on; 1 = any disagreement.",
    )

    def __init__(self, *args, user=None, **kwargs) -> None:  # noqa: ANN001
        super().__init__(*args, **kwargs)
        kinds = [(SourceKind.FILTER.value, SourceKind.FILTER.label),
                 (SourceKind.SAVED_VIEW.value, SourceKind.SAVED_VIEW.label)]
        kinds += [(key, source.label) for key, source in reply_sources.SOURCES.items()]
        self.fields["source_kind"].choices = kinds
        self.fields["source_kind"].initial = SourceKind.FILTER
        self.fields["saved_view"].queryset = SavedView.objects.filter(Q(owner=user) | Q(shared=True))
        choices = [("", "—")]
        for source in reply_sources.SOURCES.values():
            choices += source.choices()
        self.fields["source_value"].choices = choices
        self.fields["reviewers"].queryset = (
            get_user_model().objects.filter(is_active=True)
            .filter(Q(groups__name__in=[roles.MODERATOR, roles.DOMAIN_EXPERT]) | Q(is_superuser=True))
            .distinct().order_by("username")
        )

    def spec(self) -> QueueSpec:
        data = self.cleaned_data
        return QueueSpec(
            name=data["name"], description=data["description"], source_kind=data["source_kind"],
            query_string=data["query_string"].lstrip("?"), saved_view=data["saved_view"],
            source_value=data["source_value"], mode=data["mode"], reply_scope=data["reply_scope"],
            reviews_per_item=data["reviews_per_item"], rubric=data["rubric"], reviewers=data["reviewers"],
            reviewer_role=data["reviewer_role"], due_date=data["due_date"], lease_minutes=data["lease_minutes"],
            adjudication_threshold=data["adjudication_threshold"],
        )


class ScoreConfigForm(forms.Form):
    key = forms.SlugField(max_length=60, help_text="Same key as an existing field: a new version of it.")
    name = forms.CharField(max_length=80)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    kind = forms.ChoiceField(choices=ScoreKind.choices)
    minimum = forms.FloatField(required=False)
    maximum = forms.FloatField(required=False)
    step = forms.FloatField(required=False, min_value=0.0001)
    options = forms.CharField(required=False, help_text="Categorical: the options, comma-separated.")

    def clean_options(self) -> list[str]:
        return [o.strip() for o in self.cleaned_data["options"].split(",") if o.strip()]

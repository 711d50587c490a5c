from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from feedbackhub import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("healthz/live", views.healthz_live, name="healthz-live"),
    path("healthz/ready", views.healthz_ready, name="healthz-ready"),
    path("metrics", views.metrics_view, name="metrics"),
    # Browsers ask for /favicon.ico on pages that name no icon (the admin's): answer instead of a logged 404.
    path("favicon.ico", views.favicon),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("conversations/", include("sessions.urls")),
    # The conversation list and trails were under /sessions/ before they took their one name: old links still work.
    re_path(r"^sessions/(?P<rest>.*)$", RedirectView.as_view(url="/conversations/%(rest)s", permanent=True,
                                                               query_string=True)),
    path("review/", include("annotations.urls")),
    path("inbox/", include("annotations.inbox.urls")),
    path("recall/", include("annotations.recall.urls")),
    path("api/v1/", include("annotations.recall.api_urls")),
    # The ingest API, the OTLP traces receiver (/v1/traces) and the feedback widget (/widget/).
    path("", include("sessions.ingest.urls")),
    path("triage/", include("annotations.triage.urls")),
    path("curation/", include("annotations.curation.urls")),
    path("insights/", include("annotations.insights.urls")),
    path("queues/", include("annotations.queues.urls")),
]

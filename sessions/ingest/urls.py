from django.urls import path

from sessions.ingest import api, widget

app_name = "ingest"
urlpatterns = [
    path("api/v1/conversations", api.conversations, name="conversations"),
    path("api/v1/feedback", api.feedback, name="feedback"),
    path("api/v1/openapi.json", api.openapi, name="openapi"),
    # OTLP/HTTP's default path for traces: an exporter pointed at the app's base URL finds it.
    path("v1/traces", api.traces, name="otlp_traces"),
    path("widget/v1.js", widget.script, name="widget_script"),
    path("widget/v1/config", widget.config, name="widget_config"),
    path("widget/v1/feedback", widget.feedback, name="widget_feedback"),
]

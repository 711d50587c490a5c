from django.urls import path

from annotations.insights import views

app_name = "insights"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("csv/<slug:chart_id>/", views.chart_csv, name="csv"),
    path("spans/", views.spans, name="spans"),
    path("bulk/", views.bulk_panel, name="bulk_panel"),
    path("bulk/apply", views.bulk_apply, name="bulk_apply"),
    path("chips/", views.chips, name="chips"),
    path("views/", views.view_list, name="views"),
    path("views/save", views.view_save, name="view_save"),
    path("views/<slug:slug>/", views.view_open, name="view_open"),
    path("views/<slug:slug>/delete", views.view_delete, name="view_delete"),
]

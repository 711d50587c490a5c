from django.urls import path

from annotations.curation import views

app_name = "curation"

urlpatterns = [
    path("", views.dataset_list, name="datasets"),
    path("d/<slug:slug>/", views.dataset_detail, name="dataset"),
    path("d/<slug:slug>/versions", views.version_cut, name="version_cut"),
    path("d/<slug:slug>/versions/preview", views.version_preview, name="version_preview"),
    path("d/<slug:slug>/examples/bulk", views.examples_bulk, name="examples_bulk"),
    path("d/<slug:slug>/export", views.dataset_export, name="export"),
    path("d/<slug:slug>/scrub", views.scrub_summary, name="scrub_summary"),
    path("examples/<int:example_id>/review", views.example_review, name="example_review"),
    path("exports/<int:pk>/", views.export_job, name="export_job"),
    path("exports/<int:pk>/download", views.export_download, name="export_download"),
    path("corrections/", views.correction_list, name="corrections"),
    path("corrections/add", views.correction_add, name="correction_add"),
]

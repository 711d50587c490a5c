from django.urls import path

from annotations.recall import views

app_name = "recall"
urlpatterns = [
    path("search/", views.search, name="search"),
    path("similar/turn/<int:turn_id>/", views.similar_to_turn, name="similar_turn"),
    path("similar/annotation/<int:annotation_id>/", views.similar_to_annotation, name="similar_annotation"),
]

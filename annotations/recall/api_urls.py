from django.urls import path

from annotations.recall import api

app_name = "api"
urlpatterns = [
    path("recall", api.recall, name="recall"),
]

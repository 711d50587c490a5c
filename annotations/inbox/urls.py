from django.urls import path

from annotations.inbox import views

app_name = "inbox"

urlpatterns = [
    path("", views.inbox, name="page"),
    path("count", views.count, name="count"),
    path("users", views.users, name="users"),
    path("read-all", views.read_all, name="read_all"),
    path("<int:notification_id>/", views.open_item, name="open"),
    path("<int:notification_id>/read", views.read, name="read"),
]

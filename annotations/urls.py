from django.urls import path

from annotations import views

app_name = "annotations"

urlpatterns = [
    path("c/<int:conversation_id>/", views.review, name="review"),
    path("c/<int:conversation_id>/changes", views.changes, name="changes"),
    path("tags.css", views.tags_css, name="tags_css"),
    path("turns/<int:turn_id>/annotations", views.annotation_create, name="annotation_create"),
    path("turns/<int:turn_id>/correction", views.correction_save, name="correction_save"),
    path("a/<int:annotation_id>/", views.annotation_card, name="card"),
    path("a/<int:annotation_id>/edit", views.annotation_edit, name="annotation_edit"),
    path("a/<int:annotation_id>/status", views.annotation_status, name="annotation_status"),
    path("a/<int:annotation_id>/delete", views.annotation_delete, name="annotation_delete"),
    path("a/<int:annotation_id>/restore", views.annotation_restore, name="annotation_restore"),
    path("a/<int:annotation_id>/decide", views.annotation_decide, name="annotation_decide"),
    path("a/<int:annotation_id>/history", views.annotation_history, name="annotation_history"),
    path("a/<int:annotation_id>/replies", views.reply_create, name="reply_create"),
    path("replies/<int:reply_id>/edit", views.reply_edit, name="reply_edit"),
    path("replies/<int:reply_id>/delete", views.reply_delete, name="reply_delete"),
    path("corrections/<int:correction_id>/approve", views.correction_approve, name="correction_approve"),
    path("corrections/<int:correction_id>/history", views.correction_history, name="correction_history"),
]

from django.urls import path

from annotations.queues import views

app_name = "queues"

urlpatterns = [
    path("", views.queue_list, name="list"),
    path("new", views.queue_new, name="new"),
    path("rubric", views.rubric, name="rubric"),
    path("<int:queue_id>/", views.queue_detail, name="detail"),
    path("<int:queue_id>/archive", views.queue_archive, name="archive"),
    path("<int:queue_id>/agreement.json", views.agreement_json, name="agreement"),
    path("<int:queue_id>/next", views.work_next, name="next"),
    path("<int:queue_id>/items/<int:item_id>/complete", views.work_complete, name="complete"),
    path("<int:queue_id>/items/<int:item_id>/skip", views.work_skip, name="skip"),
    path("<int:queue_id>/items/<int:item_id>/adjudicate", views.adjudicate, name="adjudicate"),
]

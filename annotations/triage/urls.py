from django.urls import path

from annotations.triage import views

app_name = "triage"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("stamp", views.stamp, name="stamp"),
    path("bulk", views.bulk, name="bulk"),
    path("c/<int:cluster_id>/", views.cluster, name="cluster"),
    path("c/<int:cluster_id>/claim", views.claim, name="claim"),
    path("c/<int:cluster_id>/release", views.release, name="release"),
    path("c/<int:cluster_id>/status", views.set_status, name="status"),
    path("c/<int:cluster_id>/guidance", views.guidance, name="guidance"),
    path("c/<int:cluster_id>/tag", views.tag_members, name="tag"),
    path("c/<int:cluster_id>/move", views.move_members, name="move"),
    path("c/<int:cluster_id>/bulk", views.bulk, name="cluster_bulk"),
    path("proposals/<int:proposal_id>/decide", views.decide_proposal, name="decide"),
]

from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("queue/", views.queue, name="queue"),
    path("queue/next/", views.queue_next, name="queue_next"),
    path("queue/bulk/", views.queue_bulk, name="queue_bulk"),
    path("cases/<int:case_id>/", views.case_page, name="case"),
    path("cases/<int:case_id>/decide/", views.case_decide, name="case_decide"),
    path("cases/<int:case_id>/claim/", views.case_claim, name="case_claim"),
    path("cases/<int:case_id>/release/", views.case_release, name="case_release"),
    path("cases/<int:case_id>/notes/", views.case_note, name="case_note"),
    path("cases/<int:case_id>/reevaluate/", views.case_reevaluate, name="case_reevaluate"),
    path("cases/<int:case_id>/reveal/", views.case_reveal, name="case_reveal"),
    path("events/<str:kind>/<int:event_id>/", views.event_detail, name="event"),
    path(
        "decisions/<int:decision_id>/approve/", views.decision_review, {"verdict": "approve"}, name="decision_approve"
    ),
    path("decisions/<int:decision_id>/reject/", views.decision_review, {"verdict": "reject"}, name="decision_reject"),
]

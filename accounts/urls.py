from django.urls import path

from accounts.views import case, events, guidance, queue

app_name = "accounts"

urlpatterns = [
    path("queue/", queue.queue, name="queue"),
    path("queue/next/", queue.queue_next, name="queue_next"),
    path("queue/bulk/", queue.queue_bulk, name="queue_bulk"),
    path("cases/<int:case_id>/", case.case_page, name="case"),
    path("cases/<int:case_id>/decide/", case.case_decide, name="case_decide"),
    path("cases/<int:case_id>/claim/", case.case_claim, name="case_claim"),
    path("cases/<int:case_id>/release/", case.case_release, name="case_release"),
    path("cases/<int:case_id>/notes/", case.case_note, name="case_note"),
    path("cases/<int:case_id>/reevaluate/", case.case_reevaluate, name="case_reevaluate"),
    path("cases/<int:case_id>/exempt/", case.case_exempt, name="case_exempt"),
    path("cases/<int:case_id>/reveal/", case.case_reveal, name="case_reveal"),
    path("events/<str:kind>/<int:event_id>/", events.event_detail, name="event"),
    path("guidance/", guidance.guidance, name="guidance"),
    path("guidance/<str:code>/", guidance.guidance_publish_view, name="guidance_publish"),
    path("decisions/<int:decision_id>/approve/", case.decision_review, {"verdict": "approve"}, name="decision_approve"),
    path("decisions/<int:decision_id>/reject/", case.decision_review, {"verdict": "reject"}, name="decision_reject"),
]

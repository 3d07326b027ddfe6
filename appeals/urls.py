from django.urls import path

from appeals import api
from appeals.views import review

app_name = "appeals"

urlpatterns = [
    path("appeals/", review.inbox, name="inbox"),
    path("appeals/next/", review.inbox_next, name="inbox_next"),
    path("appeals/assign/", review.inbox_assign, name="inbox_assign"),
    path("appeals/alerts/read/", review.alerts_read, name="alerts_read"),
    path("appeals/<int:appeal_id>/", review.appeal_page, name="appeal"),
    path("appeals/<int:appeal_id>/decide/", review.appeal_decide, name="appeal_decide"),
    path("appeals/documents/<int:document_id>/", review.document, name="document"),
    path("api/v1/appeals/", api.AppealCreateApi.as_view(), name="api_create"),
    path("api/v1/appeals/<int:appeal_id>/", api.AppealDetailApi.as_view(), name="api_detail"),
]

from django.urls import path

from appeals import api, views

app_name = "appeals"

urlpatterns = [
    path("appeals/", views.inbox, name="inbox"),
    path("appeals/alerts/read/", views.alerts_read, name="alerts_read"),
    path("appeals/<int:appeal_id>/", views.appeal_page, name="appeal"),
    path("appeals/<int:appeal_id>/decide/", views.appeal_decide, name="appeal_decide"),
    path("appeals/documents/<int:document_id>/", views.document, name="document"),
    # The borrower's pages, reached by the signed links in their messages.
    path("a/<str:token>/", views.borrower_appeal, name="borrower_appeal"),
    path("a/more/<str:token>/", views.borrower_more_info, name="borrower_more_info"),
    path("api/v1/appeals/", api.AppealCreateApi.as_view(), name="api_create"),
    path("api/v1/appeals/<int:appeal_id>/", api.AppealDetailApi.as_view(), name="api_detail"),
]

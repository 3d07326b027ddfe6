from django.urls import path

from ingest import api

app_name = "ingest"

urlpatterns = [
    path("api/v1/events/", api.EventsApi.as_view(), name="api_events"),
    path("api/v1/ingest/batches/<int:batch_id>/", api.BatchApi.as_view(), name="api_batch"),
]

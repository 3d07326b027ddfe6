from django.urls import path

from riskops.jobs import api, views

app_name = "riskops"

urlpatterns = [
    path("jobs/", views.jobs, name="jobs"),
    path("jobs/new/", views.job_new, name="job_new"),
    path("jobs/import/", views.job_import, name="job_import"),
    path("jobs/<int:job_id>/errors.csv", views.job_errors_csv, name="job_errors"),
    path("jobs/<int:job_id>/", views.job_page, name="job"),
    path("jobs/<int:job_id>/approve/", views.job_approve, name="job_approve"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="job_cancel"),
    path("api/v1/jobs/", api.JobCreateApi.as_view(), name="api_jobs"),
    path("api/v1/jobs/<int:job_id>/", api.JobDetailApi.as_view(), name="api_job"),
]

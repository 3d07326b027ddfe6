from django.urls import path

from riskops.audit_trail import views

# In the project's "riskops" namespace (riskops/urls.py includes these with the jobs' patterns).
urlpatterns = [
    path("audit/", views.audit, name="audit"),
    path("audit/export.csv", views.audit_export_csv, name="audit_export"),
]

from django.urls import path

from riskops.dashboard import views

# In the project's "riskops" namespace (riskops/urls.py includes these with the jobs' patterns).
urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("my-work/", views.my_work, name="my_work"),
]

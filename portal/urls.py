from django.urls import path

from portal import views

app_name = "portal"

urlpatterns = [
    # The borrower's pages, reached by the signed links in their messages.
    path("a/<str:token>/", views.status, name="status"),
    path("a/<str:token>/profile/", views.profile, name="profile"),
    path("a/more/<str:token>/", views.more_info, name="more_info"),
    # For operators: a profile update's document.
    path("profile-documents/<int:document_id>/", views.profile_document, name="profile_document"),
]

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from riskops import views
from riskops.audit_trail.urls import urlpatterns as audit_urls
from riskops.dashboard.urls import urlpatterns as dashboard_urls
from riskops.dashboard.views import home
from riskops.jobs.urls import urlpatterns as jobs_urls
from riskops.tuning.urls import urlpatterns as tuning_urls

urlpatterns = [
    path("", home, name="home"),
    path("", include("accounts.urls")),
    path("", include("appeals.urls")),
    # One "riskops" namespace for the project's own pages: the jobs', the audit page's, the dashboard's, the rules'.
    path("", include((jobs_urls + audit_urls + dashboard_urls + tuning_urls, "riskops"))),
    path("", include("ingest.urls")),
    path("", include("portal.urls")),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("login/code/", views.second_factor_page, name="second_factor"),
    path("login/code/setup/", views.second_factor_setup, name="second_factor_setup"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("healthz", views.healthz, name="healthz"),
    # Browsers ask for /favicon.ico whatever the page links; the icon is a static file.
    path("favicon.ico", RedirectView.as_view(url=static("riskops/favicon.svg"), permanent=True)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api_schema"), name="api_docs"),
    path("admin/", admin.site.urls),
]

handler404 = "riskops.views.not_found"
handler400 = "riskops.views.bad_request"

from django.urls import path

from riskops.tuning import views

# In the project's "riskops" namespace (riskops/urls.py includes these with the jobs' patterns).
urlpatterns = [
    path("rules/", views.rules, name="rules"),
    path("rules/drafts/", views.draft_create, name="draft_create"),
    path("rules/v<int:version>/", views.ruleset, name="ruleset"),
    path("rules/v<int:version>/rules/<str:code>/", views.rule_edit, name="rule_edit"),
    path("rules/v<int:version>/discard/", views.draft_discard, name="draft_discard"),
    path("rules/v<int:version>/simulate/", views.simulate, name="simulate"),
    path("rules/v<int:version>/backtest/", views.backtest, name="backtest"),
    path("rules/v<int:version>/shadow/", views.shadow, name="shadow"),
    path("rules/v<int:version>/activate/", views.activate, name="activate"),
    path("rules/simulations/<int:simulation_id>/", views.simulation, name="simulation"),
    path("rules/simulations/<int:simulation_id>/<str:outcome>.csv", views.simulation_csv, name="simulation_csv"),
    path("rules/backtests/<int:backtest_id>/", views.backtest_report, name="backtest_report"),
    path("rules/backtests/<int:backtest_id>/accounts.csv", views.backtest_csv, name="backtest_csv"),
]

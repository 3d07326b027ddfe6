"""The managers' dashboard: the book's figures over a range of days, each linking to its cases or appeals.

The figures are defined where their tables are (accounts.figures, appeals.figures); closed days' counts are kept
in riskops.models.DailyFigure by `services.dashboard_refresh` (a beat task, idempotent, catching up on any day it
has not counted), today's and any uncounted day's are counted live from the same SQL (`selectors.daily_counts`).
`manage.py verify_dashboard` checks the two against each other.
"""

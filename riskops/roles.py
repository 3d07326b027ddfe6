"""Operator roles are Django groups; pages and actions check them on the server."""

ANALYST = "analyst"
SENIOR_REVIEWER = "senior_reviewer"
RISK_MANAGER = "risk_manager"
AUDITOR = "auditor"
ADMIN = "admin"

ROLES = [ANALYST, SENIOR_REVIEWER, RISK_MANAGER, AUDITOR, ADMIN]

from django.apps import AppConfig


class RiskopsConfig(AppConfig):
    name = "riskops"
    verbose_name = "RiskOps"

from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    """Compliance exports and the audit-trail viewer. It reads every app (proposals, votes,
    orders, fills, the audit chain), so it sits above them all; nothing imports it."""

    name = "compliance"

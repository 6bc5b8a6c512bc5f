from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"

    def ready(self):
        # Registers governance's pipeline stages and heartbeats in every process, the
        # web server included (models must be loaded first, hence here).
        from governance import tasks  # noqa: F401

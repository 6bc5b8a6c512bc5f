from django.apps import AppConfig
from django.db.models.signals import post_migrate


class GovernanceConfig(AppConfig):
    name = "governance"

    def ready(self):
        # Registers governance's pipeline stages and heartbeats in every process, the
        # web server included (models must be loaded first, hence here).
        from governance import tasks  # noqa: F401
        from governance.roles import roles_ensure

        # The roles need every app's permissions, which Django creates after migrate.
        post_migrate.connect(lambda **kwargs: roles_ensure(), weak=False, dispatch_uid="chronosx-roles")

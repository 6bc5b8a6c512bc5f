from django.apps import AppConfig


class ExchangeConfig(AppConfig):
    name = "exchange"

    def ready(self):
        # Registers the route stage and the router's heartbeat in every process (models first, hence here).
        from exchange import tasks  # noqa: F401

from pathlib import Path

from django.apps import AppConfig
from django.conf import settings
from django.core.signals import request_started

from chronosx.embedded import start_embedded_loop


class ChronosxConfig(AppConfig):
    name = "chronosx"
    verbose_name = "ChronosX"

    def ready(self):
        if settings.IS_SQLITE:
            # The embedded default's database lives under var/; a fresh checkout has none yet.
            Path(settings.DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        request_started.connect(start_embedded_loop, dispatch_uid="chronosx-embedded-loop")

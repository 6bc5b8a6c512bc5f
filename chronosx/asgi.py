import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chronosx.settings")
application = get_asgi_application()

from chronosx.embedded import start_embedded_loop  # noqa: E402  (needs Django set up)

start_embedded_loop()

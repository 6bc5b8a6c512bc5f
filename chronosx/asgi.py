import os

from django.conf import settings
from django.core.asgi import get_asgi_application

from chronosx.logs import asgi_request_ids

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chronosx.settings")
application = get_asgi_application()

if settings.CHRONOSX_SERVE_STATIC:
    # Embedded default: no nginx in front, so the app serves admin/dashboard assets itself.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    application = ASGIStaticFilesHandler(application)

# Outermost: every log line of a request carries its id (chronosx/logs.py).
application = asgi_request_ids(application)

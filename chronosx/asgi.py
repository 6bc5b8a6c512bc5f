import os

# Under ASGI each request's synchronous code runs on a thread of its own, and a persistent
# connection stays with its thread: at a few hundred requests the server ran out of
# PostgreSQL connections (503s at 20 proposals/s). The web tier closes its connection at the
# end of each request; workers, which reuse their threads, keep theirs (CHRONOSX_CONN_MAX_AGE).
os.environ.setdefault("CHRONOSX_WEB_CONN_MAX_AGE", "0")
os.environ["CHRONOSX_CONN_MAX_AGE"] = os.environ["CHRONOSX_WEB_CONN_MAX_AGE"]

from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

from chronosx.logs import asgi_request_ids  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chronosx.settings")
application = get_asgi_application()

if settings.CHRONOSX_SERVE_STATIC:
    # Embedded default: no nginx in front, so the app serves admin/dashboard assets itself.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    application = ASGIStaticFilesHandler(application)

# Outermost: every log line of a request carries its id (chronosx/logs.py).
application = asgi_request_ids(application)

import gc
import os

# Under ASGI each request's synchronous code runs on a thread of its own, so a persistent
# connection (kept per thread) is never reused, and at a few hundred requests the server ran out
# of PostgreSQL connections (503s at 20 proposals/s). The web tier lends connections from a
# bounded pool instead (CHRONOSX_WEB_DB_POOL_SIZE per process); workers, which reuse their
# threads, keep persistent ones (CHRONOSX_CONN_MAX_AGE).
os.environ.setdefault("CHRONOSX_WEB_DB_POOL_SIZE", "16")
os.environ["CHRONOSX_DB_POOL_SIZE"] = os.environ["CHRONOSX_WEB_DB_POOL_SIZE"]

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

# What is loaded by now lives as long as the process: leave it out of the collector's full
# passes, which otherwise walk all of Django, DRF and the app (a 76 ms pause in a POST, every
# few hundred requests; 9 ms frozen). Each uvicorn worker imports this module itself.
gc.freeze()

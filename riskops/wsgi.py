"""The WSGI application, for gunicorn (`gunicorn riskops.wsgi:application`) or any WSGI server."""

import ctypes
import logging
import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "riskops.settings")
application = get_wsgi_application()

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_large_buffers() -> bool:
    """Keep request-sized buffers in the C heap instead of returning them to the kernel after each request.

    Every appeal brings up to 5 documents of up to 10 MB. With glibc's defaults, the buffers that hold them (socket
    reads, the parsed upload, the stored copy) are mapped fresh and unmapped again per request, and every page is
    faulted in anew: about 500 page faults per 1 MB appeal, 2-3 ms of CPU on the test machine, about a fifth of the
    request's cost (bench/appeals.py). Serving them from the heap (mmap threshold 32 MiB, glibc's maximum) and
    letting up to 64 MiB of free heap stay with the process removes nearly all of them. The price is memory a worker
    keeps after a burst of large uploads: at most that 64 MiB above what it is using.
    Returns False where the C library has no `mallopt` (not glibc) or refuses the values.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)) and bool(mallopt(_M_TRIM_THRESHOLD, 64 * 1024 * 1024))


if settings.WEB_KEEP_LARGE_BUFFERS and not keep_large_buffers():
    logging.getLogger(__name__).info("malloc tuning unavailable on this C library; running with its defaults")

"""The WSGI application, for gunicorn (`gunicorn riskops.wsgi:application`) or any WSGI server.

Run the web workers with glibc's malloc tuned for uploads (README, "In production"):
`GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864`. Every appeal brings up
to 5 documents of up to 10 MB; with glibc's defaults the buffers that hold them are mapped fresh and unmapped
again per request, and every page is faulted in anew (about 500 page faults per 1 MB appeal, a fifth of its CPU).
With the tunables they are served from the heap, and up to 64 MiB of free heap stays with the worker.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "riskops.settings")
application = get_wsgi_application()

import pytest

from riskops.celery import app as celery_app


@pytest.fixture(autouse=True)
def _celery_eager():
    """Tasks run in-process in tests; `make run` uses a real worker."""
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield

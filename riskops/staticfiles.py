"""Static files as `collectstatic` writes them for WhiteNoise (settings.py, STATIC_COLLECTED, says when)."""

from __future__ import annotations

from django.contrib.staticfiles.apps import StaticFilesConfig as DjangoStaticFilesConfig
from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesConfig(DjangoStaticFilesConfig):
    # Plotly's package_data folder (STATICFILES_DIRS' vendor/plotly) also holds the Jupyter widget bundle (4.9 MB),
    # sample data sets and theme templates, which no page loads: collecting and compressing them took as long as
    # everything else together.
    ignore_patterns = [*DjangoStaticFilesConfig.ignore_patterns, "widgetbundle.js", "datasets", "templates"]


class CollectedStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """WhiteNoise's storage: hashed names from collectstatic's manifest, gzip and brotli copies beside each file.

    Until a manifest exists (a benchmark, a check or a management command run with DEBUG off before anyone ran
    collectstatic) the URLs are the plain names, where the manifest storage would fail every page that links a
    static file.
    """

    def stored_name(self, name: str) -> str:
        if not self.hashed_files:
            return name
        return super().stored_name(name)

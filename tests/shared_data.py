"""Public data sets kept beside the repository (``../shared/data``, or ``FEEDBACKHUB_SHARED_DATA``).

Tests that read them are marked with ``requires(path)``: a checkout without the data skips them with a reason
instead of failing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings

SHARED_DATA = Path(os.environ.get("FEEDBACKHUB_SHARED_DATA") or Path(settings.BASE_DIR).parent / "shared" / "data")


def requires(path: Path) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not path.exists(), reason=f"needs the shared data file {path}")

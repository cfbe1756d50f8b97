"""Suite-wide configuration: hypothesis profiles.

Kept generic on purpose: package-specific helpers live next to their tests. `tests/` itself is
on `sys.path` (pytest's rootdir-relative import), so test modules can import `strategies`.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# "flowcraft": what developers and CI run. "thorough": opt in with HYPOTHESIS_PROFILE=thorough.
settings.register_profile(
    "flowcraft",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    deadline=None,
    max_examples=1_000,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "flowcraft"))

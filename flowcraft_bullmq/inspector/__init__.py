"""The run inspector (`flowcraft inspect`): a small web page over `BullMQAdapter`'s read-only
views (`list_runs`, `inspect_run`) and its resume and cancel calls.

A raw ASGI app (`create_app`), served by uvicorn (the ``inspect`` extra); its CSS and JS ship
in the package (``static/``), so the page loads nothing from elsewhere. See docs/inspector.md.
"""

from __future__ import annotations

from .app import InspectorApp, create_app

__all__ = ["InspectorApp", "create_app"]

"""The version pin of a blueprint (SPEC 9.9): `metadata.version`, else a content hash."""

from __future__ import annotations

import hashlib
import json

from .blueprint.model import Blueprint


def blueprint_pin(bp: Blueprint) -> str:
    """Stable across processes: the declared version, else sha256 of canonical JSON."""
    if bp.metadata.version is not None:
        return bp.metadata.version
    cached = bp._cache.get("pin")
    if isinstance(cached, str):
        return cached
    canonical = json.dumps(
        bp.model_dump(mode="json", by_alias=True),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    pin = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    bp._cache["pin"] = pin
    return pin


__all__ = ["blueprint_pin"]

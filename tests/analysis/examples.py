"""Blueprints shared by the analysis tests."""

from __future__ import annotations

from typing import Any

import flow_maps
from spec_examples import ORDER_REVIEW

from flowcraft_core.blueprint.model import Blueprint

#: The builder's loop (SPEC 3.7) with a real loop-controller header.
BUILDER_LOOP: dict[str, Any] = flow_maps.builder_loop("iteration < 3")


def order_review() -> Blueprint:
    return Blueprint.model_validate(ORDER_REVIEW)


def builder_loop() -> Blueprint:
    return Blueprint.model_validate(BUILDER_LOOP)

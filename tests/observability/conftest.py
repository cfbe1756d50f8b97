"""The suite-owned redis-server for the observability tests (one per session, a free loopback
port, no persistence; no fakes, no skips), a key prefix per test, and real worker processes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from obs_support import BLUEPRINTS, ObsWorker
from redis_fixtures import redis_fixtures

redis_url, prefix, client = redis_fixtures("tests/observability", "ob")


@pytest.fixture(scope="session")
def blueprint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("obs-blueprints")
    for bp in BLUEPRINTS:
        (directory / f"{bp['id']}.json").write_text(json.dumps(bp), encoding="utf-8")
    return directory


@pytest.fixture
def spawn(tmp_path: Path, blueprint_dir: Path) -> Iterator[Callable[..., ObsWorker]]:
    """`spawn(redis_url, prefix, *options)`: a `flowcraft worker` subprocess (this directory's
    nodes and blueprints), killed at the end of the test if it is still running."""
    started: list[ObsWorker] = []

    def make(redis_url: str, prefix: str, *options: str) -> ObsWorker:
        worker = ObsWorker(redis_url, prefix, blueprint_dir, tmp_path, list(options))
        started.append(worker)
        return worker

    try:
        yield make
    finally:
        for worker in started:
            worker.kill()

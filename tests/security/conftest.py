"""Fixtures of the security tests: a CA and server certificate (openssl), the blueprint
directory the workers load, and worker processes that are always killed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from bullmq_processes import WorkerProcess
from redis_server import TlsFiles, make_tls_files
from sec_support import CHAIN, WAITS


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def blueprint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("blueprints")
    for bp in (CHAIN, WAITS):
        (directory / f"{bp['id']}.json").write_text(json.dumps(bp), encoding="utf-8")
    return directory


@pytest.fixture
def running_worker() -> Iterator[list[WorkerProcess]]:
    """Workers a test starts; killed afterwards whatever happens."""
    started: list[WorkerProcess] = []
    try:
        yield started
    finally:
        for worker in started:
            worker.kill()

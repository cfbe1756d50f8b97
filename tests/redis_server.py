"""The suite-owned redis-server: one throwaway server on a free loopback port, no persistence.

Shared by every Redis test directory's conftest. No fakes and no skips: a missing
`redis-server` fails the tests that need it with a message saying how to install it.
Options for the security and failure-mode tests: extra server arguments (`requirepass`, ACL
users, `appendonly yes`), a TLS-only server, a fixed port and data directory (a restart on the
same port that reloads its AOF), and how the readiness probe connects (password, TLS files).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost it signed."""

    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Create a CA and a server certificate with `openssl` (installed by scripts/test.sh)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail(
            "openssl is required to make TLS certificates and was not found on PATH: install "
            "it (e.g. 'apt-get install openssl')",
            pytrace=False,
        )
    ca, ca_key = directory / "ca.crt", directory / "ca.key"
    cert, key, csr = directory / "server.crt", directory / "server.key", directory / "server.csr"
    ext = directory / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n", encoding="ascii")
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
         "/CN=flowcraft test CA", "-keyout", str(ca_key), "-out", str(ca)],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
         "-keyout", str(key), "-out", str(csr)],
        ["x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
         "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert)],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run([openssl, *step], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"openssl {step[0]} failed:\n{done.stderr}", pytrace=False)
    return TlsFiles(ca=ca, cert=cert, key=key)


@contextmanager
def running_redis_server(
    purpose: str,
    *,
    args: Sequence[str] = (),
    tls: TlsFiles | None = None,
    port: int | None = None,
    workdir: str | None = None,
    probe: Mapping[str, Any] | None = None,
) -> Iterator[int]:
    """Start `redis-server --save '' --appendonly no` on 127.0.0.1; yield its port; stop it.

    `args` are appended (so `["--appendonly", "yes"]` wins); with `tls` the port is TLS-only
    (`--port 0 --tls-port`); `port` and `workdir` (kept afterwards) allow a restart that
    reloads the same data; `probe` are redis-py options for the readiness PING (a password).
    """
    binary = os.environ.get("FLOWCRAFT_REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            f"redis-server is required by {purpose} and was not found on PATH: install it "
            "(e.g. 'apt-get install redis-server') or set FLOWCRAFT_REDIS_SERVER",
            pytrace=False,
        )
    port = free_port() if port is None else port
    own_dir = workdir is None
    workdir = tempfile.mkdtemp(prefix="flowcraft-redis-") if workdir is None else workdir
    log_path = os.path.join(workdir, f"redis-{port}.log")
    listen = ["--port", str(port)]
    probe_options = dict(probe or {})
    if tls is not None:
        listen = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls.cert)]
        listen += ["--tls-key-file", str(tls.key), "--tls-ca-cert-file", str(tls.ca)]
        listen += ["--tls-auth-clients", "no"]
        probe_options.setdefault("ssl", True)
        probe_options.setdefault("ssl_ca_certs", str(tls.ca))
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [binary, *listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--dir", workdir, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        probe_client = redis.Redis(host="127.0.0.1", port=port, **probe_options)
        deadline = time.monotonic() + 10
        while True:
            try:
                probe_client.ping()
                break
            except redis.ConnectionError:  # also BusyLoadingError: reloading its AOF
                if proc.poll() is not None or time.monotonic() > deadline:
                    with open(log_path, "rb") as f:
                        output = f.read().decode(errors="replace")
                    pytest.fail(f"redis-server did not start on {port}:\n{output}", pytrace=False)
                time.sleep(0.02)
        probe_client.close()
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)


__all__ = ["TlsFiles", "free_port", "make_tls_files", "running_redis_server"]

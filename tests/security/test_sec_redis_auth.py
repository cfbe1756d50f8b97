"""Redis AUTH (a password, an ACL user), TLS (`rediss://`), and two applications sharing one
Redis: each against its own real redis-server, each run through a `flowcraft worker`
subprocess given the URL; wrong credentials and a missing CA fail at once with one clear line
(server named, password masked), never a traceback or a hang."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from bullmq_processes import WorkerProcess, adapter
from redis_server import TlsFiles, running_redis_server
from sec_support import chain, completes, run_chain, run_waits, worker_process
from security_nodes import registry

from flowcraft_bullmq import RedisSettings
from flowcraft_core.cli import main

PASSWORD = "s3cret-Pw"
#: The narrowest ACL we found that runs everything (BullMQ included): keys under the
#: application's prefix only, no pub/sub channels, no admin commands. CONFIG GET is refused,
#: so the eviction-policy check reads INFO instead.
APP_ACL = "on >{password} resetchannels ~{prefix}:* -@all +@read +@write +@scripting " \
    "+@connection +@transaction +info +time"  # fmt: skip


def _worker_fails_fast(
    url: str, blueprint_dir: Path, tmp_path: Path, started: list[WorkerProcess], *fragments: str
) -> str:
    """A worker given `url` (and the default 30 s retry window) exits 5 within seconds; its
    last stderr line names the server, masked, and holds each fragment."""
    began = time.monotonic()
    worker = worker_process(url, blueprint_dir, tmp_path / "t", "--connect-timeout", "30")
    started.append(worker)
    code = worker.wait(timeout=60)
    err = worker.stderr
    assert code == 5, err
    assert time.monotonic() - began < 20, err  # not the 30 s retry window
    assert "Traceback" not in err and "retrying" not in err, err
    last = err.splitlines()[-1]
    assert last.startswith("flowcraft: error: Redis at "), err
    for fragment in fragments:
        assert fragment in last, err
    return last


# --------------------------------------------------------------------------- password


@pytest.fixture(scope="module")
def password_port() -> Iterator[int]:
    with running_redis_server(
        "the password test", args=["--requirepass", PASSWORD], probe={"password": PASSWORD}
    ) as port:
        yield port


def test_requirepass_runs_through_a_worker(
    password_port: int, blueprint_dir: Path, tmp_path: Path, running_worker: list[WorkerProcess]
) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{password_port}/0"
    running_worker.append(worker_process(url, blueprint_dir, tmp_path / "t"))
    completes(running_worker[0], url)
    # The password may also come from a settings object instead of the URL.
    settings = RedisSettings(f"redis://127.0.0.1:{password_port}/0", password=PASSWORD)
    assert asyncio.run(run_chain(settings)).status == "completed"
    assert PASSWORD not in running_worker[0].stderr


@pytest.mark.parametrize("credentials", [":wrong@", ""], ids=["wrong-password", "no-password"])
async def test_wrong_or_missing_password_is_an_authentication_error(
    password_port: int, credentials: str
) -> None:
    url = f"redis://{credentials}127.0.0.1:{password_port}/0"
    with pytest.raises(redis.AuthenticationError) as caught:
        await run_chain(url)
    message = str(caught.value)
    assert message.startswith(f"Redis at redis://{credentials.replace('wrong', '***')}127.0.0.1")
    assert "wrong" not in message and PASSWORD not in message


def test_a_worker_with_a_wrong_password_exits_5_at_once(
    password_port: int, blueprint_dir: Path, tmp_path: Path, running_worker: list[WorkerProcess]
) -> None:
    url = f"redis://:wrong@127.0.0.1:{password_port}/0"
    last = _worker_fails_fast(url, blueprint_dir, tmp_path, running_worker, "redis://:***@")
    assert "wrong" not in last


def test_cli_client_commands_take_the_password_url(
    password_port: int, blueprint_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--prefix", "cli", "--blueprints", str(blueprint_dir)]
    good = f"redis://:{PASSWORD}@127.0.0.1:{password_port}/0"
    assert main(["start", "chain", "--redis", good, *base]) == 0
    run_id = capsys.readouterr().out.strip()
    assert main(["status", run_id, "--redis", good, *base]) == 0  # nobody consumes: running
    assert "running" in capsys.readouterr().out
    bad = f"redis://:nope@127.0.0.1:{password_port}/0"
    assert main(["status", run_id, "--redis", bad, *base]) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "redis://:***@127.0.0.1" in err and "nope" not in err


# --------------------------------------------------------------------------- ACL users


@pytest.fixture(scope="module")
def acl_port() -> Iterator[int]:
    with running_redis_server("the ACL test") as port:
        yield port


async def _acl_user(port: int, user: str, prefix: str) -> None:
    admin = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    try:
        rules = APP_ACL.format(password=PASSWORD, prefix=prefix).split()
        await admin.execute_command("ACL", "SETUSER", user, "reset", *rules)
    finally:
        await admin.aclose()


async def _acl_denials(port: int) -> list[tuple[str, str]]:
    """ACL LOG entries other than the refused CONFIG GET (whose fallback is INFO)."""
    admin = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    try:
        entries = await admin.acl_log()
        await admin.acl_log_reset()
    finally:
        await admin.aclose()
    found = [(str(e["reason"]), str(e["object"])) for e in entries]
    return [entry for entry in found if entry != ("command", "config|get")]


def test_an_acl_user_limited_to_the_prefix_runs_everything(
    acl_port: int,
    blueprint_dir: Path,
    tmp_path: Path,
    running_worker: list[WorkerProcess],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Keys `~app1:*` only: a worker, a client, a sleep, a resumed wait and a reconcile pass
    never touch another key (Redis refuses them, and the ACL LOG stays empty)."""
    asyncio.run(_acl_user(acl_port, "app1", "app1"))
    url = f"redis://app1:{PASSWORD}@127.0.0.1:{acl_port}/0"
    running_worker.append(worker_process(url, blueprint_dir, tmp_path / "t", prefix="app1"))
    completes(running_worker[0], url, prefix="app1")
    waited = asyncio.run(run_waits(url, "app1"))
    assert (waited.status, waited.context["_outputs.b"]) == ("completed", ["r", "b"])
    code = main(["reconcile", "--once", "--threshold", "0", "--redis", url, "--prefix", "app1"])
    out = capsys.readouterr().out
    assert code == 0 and "failed_runs: 0" in out
    assert asyncio.run(_acl_denials(acl_port)) == []


async def test_an_acl_user_cannot_use_another_prefix(acl_port: int) -> None:
    await _acl_user(acl_port, "app2", "app2")
    url = f"redis://app2:{PASSWORD}@127.0.0.1:{acl_port}/0"
    with pytest.raises(redis.ResponseError, match="no permissions to access"):
        await run_chain(url, prefix="elsewhere")
    assert (await _acl_denials(acl_port))[0][0] == "key"
    with pytest.raises(redis.AuthenticationError, match="invalid username-password pair"):
        await run_chain(f"redis://app2:wrong@127.0.0.1:{acl_port}/0", prefix="app2")


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls_port(tls_files: TlsFiles) -> Iterator[int]:
    with running_redis_server("the TLS test", tls=tls_files) as port:
        yield port


def test_rediss_with_the_ca_in_the_url_runs_through_a_worker(
    tls_port: int,
    tls_files: TlsFiles,
    blueprint_dir: Path,
    tmp_path: Path,
    running_worker: list[WorkerProcess],
) -> None:
    url = f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={tls_files.ca}"
    running_worker.append(worker_process(url, blueprint_dir, tmp_path / "t"))
    completes(running_worker[0], url)
    settings = RedisSettings(
        f"rediss://localhost:{tls_port}/0", options={"ssl_ca_certs": str(tls_files.ca)}
    )
    assert asyncio.run(run_chain(settings)).status == "completed"  # checks the host name too


async def test_rediss_without_the_ca_fails_certificate_verification(tls_port: int) -> None:
    with pytest.raises(redis.ConnectionError) as caught:
        await run_chain(f"rediss://127.0.0.1:{tls_port}/0")
    message = str(caught.value)
    assert message.startswith(f"Redis at rediss://127.0.0.1:{tls_port}/0: ")
    assert "certificate verify failed" in message


def test_a_worker_without_the_ca_exits_5_at_once(
    tls_port: int, blueprint_dir: Path, tmp_path: Path, running_worker: list[WorkerProcess]
) -> None:
    url = f"rediss://:{PASSWORD}@127.0.0.1:{tls_port}/0"
    fragments = ("certificate verify failed", "rediss://:***@127.0.0.1")
    _worker_fails_fast(url, blueprint_dir, tmp_path, running_worker, *fragments)


# --------------------------------------------------------------------------- shared Redis


async def _app_runs(port: int, user: str, queue: str, tag: str) -> list[Any]:
    url = f"redis://{user}:{PASSWORD}@127.0.0.1:{port}/0"
    bp = chain("shared", tag, length=4)
    async with adapter(url, user, registry=registry, blueprints=[bp], queue_name=queue) as app:
        run_ids = [await app.start_run("shared", run_id=f"run{i}") for i in range(6)]
        run_ids.append(await app.start_run("shared", idempotency_key="same-key"))
        return [await app.wait_for_result(run_id, timeout_s=30) for run_id in run_ids]


async def test_two_applications_share_one_redis_without_touching_each_other() -> None:
    """Same blueprint id, same run ids, same idempotency key, at the same time: each app sees
    only its own runs, and every key in Redis lies under exactly one of the two prefixes."""
    with running_redis_server("the shared-Redis test") as port:
        await _acl_user(port, "alpha", "alpha")
        await _acl_user(port, "beta", "beta")
        alpha, beta = await asyncio.gather(
            _app_runs(port, "alpha", "qa", "A"), _app_runs(port, "beta", "qb", "B")
        )
        admin = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
        try:
            keys = [key async for key in admin.scan_iter(count=1000)]
        finally:
            await admin.aclose()
        assert await _acl_denials(port) == []
    for results, tag in ((alpha, "A"), (beta, "B")):
        assert [r.status for r in results] == ["completed"] * 7
        assert all(r.context["_outputs.n3"] == [tag] * 4 for r in results)
    owners = {key: [p for p in ("alpha:", "beta:") if key.startswith(p)] for key in keys}
    assert keys and all(len(owner) == 1 for owner in owners.values()), owners
    assert {owner[0] for owner in owners.values()} == {"alpha:", "beta:"}


async def test_client_certificates_from_the_url(tls_files: TlsFiles) -> None:
    """`tls-auth-clients yes`: the certificate and key given as URL parameters let the client
    in (the server certificate doubles as a client one here); without them, one clear error."""
    with running_redis_server(
        "the client-certificate test",
        tls=tls_files,
        args=["--tls-auth-clients", "yes"],
        probe={"ssl_certfile": str(tls_files.cert), "ssl_keyfile": str(tls_files.key)},
    ) as port:
        base = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={tls_files.ca}"
        url = f"{base}&ssl_certfile={tls_files.cert}&ssl_keyfile={tls_files.key}"
        async with adapter(url, "sec", registry=registry, blueprints=[chain("c", "t")]) as app:
            result = await app.wait_for_result(await app.start_run("c"), timeout_s=30)
        assert result.status == "completed"
        with pytest.raises(redis.ConnectionError) as caught:
            await run_chain(base)
        assert str(caught.value).startswith(f"Redis at {base}: ")

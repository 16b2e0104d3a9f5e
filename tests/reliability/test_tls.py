"""Native HTTPS (issue 9, item 14): `pbx-bridge serve` as users run it (a subprocess,
configured through the environment only) with `http.tls_cert`/`tls_key`, on the real
sandbox Asterisk. A real TLS client (aiohttp with an ssl context that trusts only the
test's self-signed certificates) gets a token from /oauth/token and lists calls; SIGHUP
swaps the certificate new connections get; SIGTERM still stops it gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import ssl
import subprocess
import time
from pathlib import Path

import aiohttp

from tests.reliability.support import JOHN, free_port, report
from tests.reliability.test_bridge_kill import ServeProcess
from tests.support.bridge import demo_directory, serve_environ

A = "0003*210"


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1 and localhost (openssl CLI)."""
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", f"/CN={name}", "-keyout", str(key), "-out",
         str(cert), "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    return cert, key


def fingerprint_of_file(cert: Path) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return hashlib.sha256(der).hexdigest()


async def served_fingerprint(port: int, context: ssl.SSLContext) -> str:
    """The SHA-256 of the certificate a new TLS connection is given."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return hashlib.sha256(der).hexdigest()
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def test_https_token_list_and_certificate_reload(pbx, tmp_path: Path) -> None:
    first, first_key = self_signed(tmp_path, "first")
    second, second_key = self_signed(tmp_path, "second")
    live_cert, live_key = tmp_path / "live.crt", tmp_path / "live.key"
    shutil.copy(first, live_cert)
    shutil.copy(first_key, live_key)

    directory = demo_directory(tmp_path)
    client_id, secret = directory.create_app(JOHN, "tls-test")
    directory.close()
    port = free_port()
    env = serve_environ(
        pbx, tmp_path, port,
        PBX_BRIDGE_HTTP__TLS_CERT=str(live_cert), PBX_BRIDGE_HTTP__TLS_KEY=str(live_key),
    )
    trust = ssl.create_default_context(cafile=str(first))
    trust.load_verify_locations(cafile=str(second))
    serve = ServeProcess(env, tmp_path / "serve.log", port)
    serve.base = f"https://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as http:
            boot = await serve.start(http)
            # The OAuth token request and a list, over TLS only.
            form = {"grant_type": "client_credentials", "client_id": client_id,
                    "client_secret": secret}
            async with http.post(f"{serve.base}/oauth/token", data=form) as r:
                assert r.status == 200, await r.text()
                token = (await r.json())["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            async with http.get(f"{serve.base}/uapi/phoneCalls/@me/{A}/", headers=auth) as r:
                assert r.status in (200, 204), await r.text()
            async with http.get(f"{serve.base}/uapi/openapi.json") as r:
                servers = (await r.json())["servers"]
            # public_base_url was not set: it follows the listener, https included.
            assert servers == [{"url": f"https://127.0.0.1:{port}"}]
            # Plain HTTP on the TLS port gets nothing served.
            async with aiohttp.ClientSession() as plain:
                try:
                    async with plain.get(f"http://127.0.0.1:{port}/healthz") as r:
                        assert r.status != 200
                except aiohttp.ClientError:
                    pass

            assert await served_fingerprint(port, trust) == fingerprint_of_file(first)
            # Renewal: new files in place, then SIGHUP. New connections get the new one.
            shutil.copy(second, live_cert)
            shutil.copy(second_key, live_key)
            assert await served_fingerprint(port, trust) == fingerprint_of_file(first)
            assert serve.proc is not None
            t0 = time.monotonic()
            os.kill(serve.proc.pid, signal.SIGHUP)
            while await served_fingerprint(port, trust) != fingerprint_of_file(second):
                assert time.monotonic() - t0 < 10, "SIGHUP did not swap the certificate"
                await asyncio.sleep(0.05)
            swapped = time.monotonic() - t0
            # A broken pair on SIGHUP: logged, the current certificate is kept.
            live_key.write_text("not a key\n")
            os.kill(serve.proc.pid, signal.SIGHUP)
            await asyncio.sleep(0.5)
            assert await served_fingerprint(port, trust) == fingerprint_of_file(second)
            async with http.get(f"{serve.base}/healthz") as r:
                assert r.status == 200
            assert serve.proc.returncode is None
        # SIGTERM: graceful, exit status 0.
        os.killpg(serve.proc.pid, signal.SIGTERM)
        async with asyncio.timeout(15):
            assert await serve.proc.wait() == 0
        log = (tmp_path / "serve.log").read_text()
        assert "kept the current certificate" in log
        assert token not in log and secret not in log
    finally:
        await serve.stop()
    report("tls", boot_s=round(boot, 3), sighup_swap_s=round(swapped, 3))

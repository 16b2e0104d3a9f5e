"""The service routes (OpenAPI, health, readiness, metrics, OAuth token), the error
envelope for what aiohttp itself refuses, and `pbx-bridge serve`."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_spec
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from pbx_bridge.api.openapi import build_document
from pbx_bridge.pbx.pool import AmiPool
from tests.unit.api_support import Api, closed_port, error_of, make_directory, make_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def api(aiohttp_client, tmp_path) -> Api:
    return await Api.start(aiohttp_client, tmp_path)


# --------------------------------------------------------------------------- OpenAPI


def _validator(doc: dict, schema: dict) -> jsonschema.Draft202012Validator:
    """A validator for one schema of the document, its $refs resolved in the document."""
    registry = Registry().with_resource("urn:doc", DRAFT202012.create_resource(doc))
    schema = json.loads(json.dumps(schema).replace('"#/components', '"urn:doc#/components'))
    return jsonschema.Draft202012Validator(
        schema, registry=registry, format_checker=jsonschema.FormatChecker()
    )


async def test_openapi_document_is_valid(api: Api) -> None:
    resp = await api.client.get("/uapi/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    validate_spec(doc)
    assert doc["openapi"].startswith("3.1")
    assert doc == json.loads(json.dumps(build_document(api.settings.http.public_base_url)))


async def test_every_route_is_documented_and_nothing_else(api: Api) -> None:
    doc = await (await api.client.get("/uapi/openapi.json")).json()
    served, twins = set(), set()
    for route in api.client.app.router.routes():
        info = route.resource.get_info()
        path = info.get("path") or info.get("formatter")
        # Every path is served with a trailing "/" too (said once in the document).
        (twins if path.endswith("/") else served).add((route.method.lower(), path))
    assert twins == {(method, path + "/") for method, path in served}
    documented = {
        (method, path)
        for path, ops in doc["paths"].items()
        for method in ops
        if method != "parameters"
    }
    assert served == documented


# Documented error codes: tests/unit/test_error_codes_documented.py (derived from the
# source, not a regex and a hand list).


async def test_real_answers_match_the_document(api: Api, monkeypatch) -> None:
    doc = build_document()
    api.ready(monkeypatch)
    call = api.pbx.call("PJSIP/pstn", "PJSIP/0003*210", caller_num="7778888", caller_name="B")
    api.pbx.call("PJSIP/0003*210", "PJSIP/0003*212")

    def check(path: str, method: str, status: int, body: object) -> None:
        op = doc["paths"][path][method]
        schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
        _validator(doc, schema).validate(body)

    tmpl = "/uapi/phoneCalls/{userId}/{extension}"
    resp = await api.get("/uapi/phoneCalls/@me/@self", who="john")
    check(tmpl, "get", 200, await resp.json())
    resp = await api.get("/uapi/phoneCalls/12/0003*210", who="org3")
    check(tmpl, "get", 200, await resp.json())
    resp = await api.get(f"/uapi/phoneCalls/@me/0003*210/{call.id}")
    check(tmpl + "/{phoneCallId}", "get", 200, await resp.json())
    body = {"action": "StopRecording", "phoneCallViewId": "01"}
    resp = await api.put(f"/uapi/phoneCalls/@me/0003*210/{call.id}", body)
    check(tmpl + "/{phoneCallId}", "put", 200, await resp.json())
    for path, status in (
        ("/uapi/phoneCalls/@x/0003*210", 400),
        ("/uapi/phoneCalls/13/0003*212", 403),
    ):
        resp = await api.get(path)
        assert resp.status == status
        check(tmpl, "get", status, await resp.json())
    resp = await api.get("/uapi/phoneCalls/@me/0003*210", who=None)
    check(tmpl, "get", 401, await resp.json())
    api.bridge.ready = False
    resp = await api.get("/uapi/phoneCalls/@me/0003*210")
    check(tmpl, "get", 503, await resp.json())
    resp = await api.client.get("/readyz")
    check("/readyz", "get", 503, await resp.json())
    resp = await api.client.get("/healthz")
    check("/healthz", "get", 200, await resp.json())
    resp = await api.client.get("/metrics")
    check("/metrics", "get", 401, await resp.json())
    resp = await api.get("/metrics", who="org3")
    check("/metrics", "get", 403, await resp.json())


# --------------------------------------------------------------------------- health


async def test_healthz_always_ok(api: Api) -> None:
    resp = await api.client.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"status": "ok"}


async def test_readyz(api: Api, monkeypatch) -> None:
    resp = await api.client.get("/readyz")
    assert await error_of(resp) == (503, "pbx_unavailable")
    api.bridge.ready = True  # resynced, but the link is down
    assert (await api.client.get("/readyz")).status == 503
    api.ready(monkeypatch)
    resp = await api.client.get("/readyz")
    assert resp.status == 200 and await resp.json() == {"status": "ok"}


async def test_readyz_says_when_action_sessions_are_down(api: Api, monkeypatch) -> None:
    # Ready needs the event session only; the action sessions' state is said, not hidden.
    pool = AmiPool("127.0.0.1", closed_port(), "u", "s", action_sessions=2)
    monkeypatch.setattr(api.bridge.link, "ami", pool)
    api.ready(monkeypatch)  # the event session logged in, the two action sessions not
    resp = await api.client.get("/readyz")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body == {"status": "ok", "degraded": "2 of 2 AMI action sessions down: their "
                    "actions go through the event session"}


async def test_metrics(api: Api, monkeypatch) -> None:
    api.ready(monkeypatch)
    api.pbx.call("PJSIP/0003*210", "PJSIP/pstn")
    api.pbx.call("PJSIP/0003*212", "PJSIP/pstn")
    api.bridge.recording.counts.started = 3
    api.bridge.recording.counts.failed = 1
    await api.get("/uapi/phoneCalls/@me/0003*210")
    await api.get("/uapi/phoneCalls/@you/0003*210")
    await api.client.get("/no/such/path")
    resp = await api.get("/metrics", who="admin")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    text = await resp.text()
    assert "pbx_bridge_ami_connected 1.0" in text
    assert "pbx_bridge_live_calls 2.0" in text
    assert "pbx_bridge_recordings_started_total 3.0" in text
    assert "pbx_bridge_recordings_failed_total 1.0" in text
    route = 'route="/uapi/phoneCalls/{userId}/{extension}"'
    assert f'pbx_bridge_http_requests_total{{method="GET",{route},status="200"}} 1.0' in text
    assert f'pbx_bridge_http_requests_total{{method="GET",{route},status="400"}} 1.0' in text
    assert 'route="unmatched",status="404"' in text
    assert "@you" not in text and "0003*210" not in text  # templates, never paths


async def test_metrics_registry_is_per_app(aiohttp_client, tmp_path) -> None:
    a = await Api.start(aiohttp_client, tmp_path / "a")
    b = await Api.start(aiohttp_client, tmp_path / "b")
    await a.client.get("/healthz")
    text_b = await (await b.get("/metrics", who="admin")).text()
    assert 'route="/healthz"' not in text_b
    assert "pbx_bridge_ami_connected 0.0" in text_b


async def test_metrics_need_an_admin_token(api: Api) -> None:
    """They show every tenant's figures (live calls, recordings): no token 401, another
    user's token 403, the admin's 200; the query-parameter token works too."""
    resp = await api.client.get("/metrics")
    assert await error_of(resp) == (401, "unauthorized")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer ")
    assert "pbx_bridge" not in await resp.text()
    for who in ("john", "org3", "other", "org4"):
        resp = await api.get("/metrics", who=who)
        assert await error_of(resp) == (403, "access_denied"), who
        assert "pbx_bridge" not in await resp.text()
    resp = await api.get("/metrics", who=None, headers={"Authorization": "Bearer nope"})
    assert await error_of(resp) == (401, "unauthorized")
    assert (await api.get("/metrics", who="admin")).status == 200
    resp = await api.client.get(f"/metrics?accessRequestToken={api.apps.token['admin']}")
    assert resp.status == 200


async def test_metrics_auth_none_serves_anyone(aiohttp_client, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PBX_BRIDGE_METRICS__AUTH", "none")
    api = await Api.start(aiohttp_client, tmp_path)
    assert api.settings.metrics.auth == "none"
    resp = await api.client.get("/metrics")
    assert resp.status == 200 and "pbx_bridge_ready" in await resp.text()


# --------------------------------------------------------------------------- errors


async def test_404_and_405_use_the_envelope(api: Api) -> None:
    resp = await api.client.get("/uapi/nothing")
    assert await error_of(resp) == (404, "not_found")
    resp = await api.client.get("/uapi/phoneCalls/@me")
    assert await error_of(resp) == (404, "not_found")
    resp = await api.client.patch("/uapi/phoneCalls/@me/0003*210/abc")
    assert await error_of(resp) == (405, "method_not_allowed")
    assert set(resp.headers["Allow"].split(",")) == {"GET", "PUT", "DELETE"}
    resp = await api.client.post("/uapi/phoneCalls/@me/0003*210")
    assert await error_of(resp) == (405, "method_not_allowed")
    resp = await api.client.put("/healthz")
    assert await error_of(resp) == (405, "method_not_allowed")


async def test_unexpected_exception_is_500_without_details(
    api: Api, monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    api.ready(monkeypatch)

    def boom(*_a, **_k):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(api.bridge.link, "calls_for", boom)
    resp = await api.get("/uapi/phoneCalls/@me/0003*210?accessRequestToken=zzz")
    assert await error_of(resp) == (500, "internal_error")
    assert "secret" not in await resp.text()
    assert "secret internal detail" in caplog.text  # logged, with the traceback
    assert "Traceback" in caplog.text
    assert api.apps.token["john"] not in caplog.text
    assert "zzz" not in caplog.text


# --------------------------------------------------------------------------- OAuth


async def _use(api: Api, token: str) -> int:
    api.bridge.ready = False
    resp = await api.client.get(
        "/uapi/phoneCalls/@me/@self", headers={"Authorization": f"Bearer {token}"}
    )
    return resp.status  # 503 = authenticated (and then the PBX is down)


async def test_oauth_token_with_form_credentials(api: Api) -> None:
    resp = await api.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": api.apps.client_id["john"],
            "client_secret": api.apps.secret["john"],
        },
    )
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == api.settings.auth.token_ttl
    assert await _use(api, body["access_token"]) == 503
    principal = api.directory.authenticate(body["access_token"])
    assert principal is not None and principal.user_id == 12


async def test_oauth_token_with_http_basic(api: Api) -> None:
    cid, secret = api.apps.client_id["org3"], api.apps.secret["org3"]
    basic = base64.b64encode(f"{quote(cid)}:{quote(secret)}".encode()).decode()
    resp = await api.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "ignored"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert resp.status == 200
    token = (await resp.json())["access_token"]
    assert api.directory.authenticate(token).user_id == 2


@pytest.mark.parametrize(
    ("form", "status", "code"),
    [
        ({}, 400, "invalid_request"),
        ({"grant_type": ""}, 400, "invalid_request"),
        (
            {"grant_type": "password", "client_id": "x", "client_secret": "y"},
            400,
            "unsupported_grant_type",
        ),
        ({"grant_type": "client_credentials"}, 401, "invalid_client"),
        (
            {"grant_type": "client_credentials", "client_id": "nope", "client_secret": "x"},
            401,
            "invalid_client",
        ),
        (
            {"grant_type": "client_credentials", "client_id": "JOHN", "client_secret": "wrong"},
            401,
            "invalid_client",
        ),
        (
            {"grant_type": "client_credentials", "client_id": "JOHN", "client_secret": "JOHN\r\n"},
            400,
            "invalid_request",
        ),
    ],
)
async def test_oauth_errors(api: Api, form: dict, status: int, code: str) -> None:
    form = {k: v.replace("JOHN", api.apps.client_id["john"]) for k, v in form.items()}
    resp = await api.client.post("/oauth/token", data=form)
    assert await error_of(resp) == (status, code)
    if status == 401:
        assert resp.headers["WWW-Authenticate"].startswith("Basic")


async def test_oauth_refuses_odd_requests(api: Api) -> None:
    cid, secret = api.apps.client_id["john"], api.apps.secret["john"]
    good = f"grant_type=client_credentials&client_id={cid}&client_secret={secret}"
    # JSON instead of a form
    resp = await api.client.post(
        "/oauth/token",
        data=json.dumps({"grant_type": "client_credentials"}),
        headers={"Content-Type": "application/json"},
    )
    assert await error_of(resp) == (400, "invalid_request")
    # a repeated parameter
    resp = await api.client.post(
        "/oauth/token",
        data=good + "&grant_type=client_credentials",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert await error_of(resp) == (400, "invalid_request")
    # two client authentication methods at once
    basic = base64.b64encode(f"{cid}:{secret}".encode()).decode()
    resp = await api.client.post(
        "/oauth/token",
        data=good,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": f"Basic {basic}",
        },
    )
    assert await error_of(resp) == (400, "invalid_request")
    # a broken Basic header
    resp = await api.client.post(
        "/oauth/token",
        data="grant_type=client_credentials",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": "Basic !!!",
        },
    )
    assert await error_of(resp) == (401, "invalid_client")
    # too large
    resp = await api.client.post(
        "/oauth/token",
        data=good + "&pad=" + "x" * 20000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert await error_of(resp) == (413, "body_too_large")
    # and the good one still works
    resp = await api.client.post(
        "/oauth/token", data=good, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert resp.status == 200


async def test_oauth_secrets_never_reach_the_logs(api: Api, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    cid, secret = api.apps.client_id["john"], api.apps.secret["john"]
    resp = await api.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": cid, "client_secret": secret},
    )
    token = (await resp.json())["access_token"]
    assert secret not in caplog.text and token not in caplog.text


# --------------------------------------------------------------------------- the CLI


def test_serve_help() -> None:
    from pbx_bridge.cli import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["serve", "--help"])
    assert exc.value.code == 0


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_serve_runs_and_stops_on_sigterm(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    make_directory(settings).close()
    port = closed_port()
    env = dict(os.environ)
    env.update(
        PBX_BRIDGE_HTTP__PORT=str(port),
        PBX_BRIDGE_AMI__PORT=str(settings.ami.port),  # nothing listens there
        PBX_BRIDGE_AMI__SECRET="unit-test-secret",  # serve refuses an empty one
        PBX_BRIDGE_AMI__CONNECT_TIMEOUT="0.5",
        PBX_BRIDGE_AMI__BACKOFF_CAP="0.5",
        PBX_BRIDGE_DATABASE__URL=settings.database.url.get_secret_value(),
    )
    env.pop("PBX_BRIDGE_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pbx_bridge.cli", "serve"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline:
            try:
                status, _ = _get(f"{base}/healthz")
                break
            except OSError:
                time.sleep(0.1)
        assert status == 200
        status, body = _get(f"{base}/readyz")
        assert status == 503 and json.loads(body)["error"]["code"] == "pbx_unavailable"
        status, body = _get(f"{base}/uapi/phoneCalls/@me/@self?accessRequestToken=SeCrEt")
        assert status == 401
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out.decode()
    text = out.decode()
    assert "/uapi/phoneCalls/@me/@self" in text  # the access log
    assert "SeCrEt" not in text

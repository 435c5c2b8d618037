"""People, devices and sessions with their own credentials, probed over real HTTP as an attacker would.

Each server here is the one ``hopper serve`` builds (``hopper.serve.build_app``) under waitress on a free port.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from hopper.serve import build_app
from tests.support.postgres import free_port

GRID = {"lr": {"type": "choice", "values": [0.01, 0.001]}, "units": 32}


class Served:
    def __init__(self, base: str, token: str | None) -> None:
        self.base, self.token = base, token

    def call(self, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:  # noqa: ANN003
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.base + path, headers=headers, timeout=60, allow_redirects=False,
                                **kwargs)


@contextmanager
def serving(services, *, no_auth: bool = False):  # noqa: ANN001, ANN201
    from waitress import create_server

    port = free_port()
    wsgi, token = build_app(services, host="127.0.0.1", no_auth=no_auth, tensorboard_port=None, port=port)
    server = create_server(wsgi, host="127.0.0.1", port=port, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{port}", token)
    finally:
        server.close()


def _refused(response: requests.Response, status: int = 403) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()["error"]


# -- people and roles --------------------------------------------------------------------------------------
def test_viewers_read_editors_steer_admins_manage_and_the_audit_log_names_the_person(services, digits):
    _, viewer = services.add_user("vera", "viewer")
    _, editor = services.add_user("ed", "editor")
    _, admin = services.add_user("ada", "admin")
    with serving(services) as s:
        spec = {"name": "w", "model": "mlp", "dataset": "digits", "space": GRID, "max_epochs": 1}
        # viewer: reads everything, changes nothing
        assert s.call("GET", "/api/v1/workloads", viewer).status_code == 200
        assert s.call("GET", "/api/openapi.json", viewer).status_code == 200
        error = _refused(s.call("POST", "/api/v1/workloads", viewer, json=spec))
        assert "vera" in error["message"] and "viewer" in error["message"]
        # editor: launches and steers
        r = s.call("POST", "/api/v1/workloads", editor, json=spec)
        assert r.status_code == 201, r.text
        wid = r.json()["id"]
        assert s.call("PATCH", f"/api/v1/workloads/{wid}", viewer, json={"status": "paused"}).status_code == 403
        assert s.call("PATCH", f"/api/v1/workloads/{wid}", editor, json={"status": "paused"}).status_code == 200
        # registering devices is for admins (and enrolment tokens), not editors
        device = {"name": "d1", "interpreter": "ai-edge-litert"}
        _refused(s.call("POST", "/api/v1/devices", editor, json=device))
        assert s.call("POST", "/api/v1/devices", admin, json=device).status_code == 201
        # the bootstrap admin token still works, as the person "admin"
        assert s.call("PATCH", f"/api/v1/workloads/{wid}", s.token, json={"status": "running"}).status_code == 200
        events = s.call("GET", "/api/v1/events", viewer).json()
        actors = {(e["action"], e["actor"]) for e in events}
        assert ("launch_workload", "ed") in actors
        assert any(a == "admin" for _, a in actors) and not any(a in ("api", "web") for _, a in actors)
        # a revoked person is refused at once, a wrong token too
        services.revoke_user("ed")
        _refused(s.call("GET", "/api/v1/workloads", editor))
        _refused(s.call("GET", "/api/v1/workloads", editor[:-2] + "xx"))
    users = {u.name: u for u in services.list_users()}
    assert users["ed"].revoked_at is not None and users["ed"].active_tokens == 0
    assert users["vera"].role == "viewer" and users["vera"].active_tokens == 1


def test_tokens_are_stored_as_argon2_hashes_only(services):
    import sqlalchemy as sa

    _, token = services.add_user("hash-check", "viewer")
    with services.store.engine.connect() as conn:
        (stored,) = conn.execute(sa.text("SELECT secret_hash FROM credential")).one()
    assert stored.startswith("$argon2id$") and token not in stored and token.split(".", 1)[1] not in stored


# -- sessions ------------------------------------------------------------------------------------------------
def _login(s: Served, token: str) -> str:
    r = s.call("POST", "/login", data={"token": token})
    assert r.status_code == 302 and r.headers["Location"] == "/", r.text[:200]
    return r.cookies["session"]


def test_a_copied_cookie_dies_with_logout_revocation_and_rotation(services, digits, tmp_path):
    _, editor = services.add_user("sam", "editor")
    with serving(services) as s:
        def with_cookie(cookie: str) -> int:
            return s.call("GET", "/api/v1/workloads", cookies={"session": cookie}).status_code

        # logout ends the session on the server: a copy taken before is worthless
        cookie = _login(s, editor)
        assert with_cookie(cookie) == 200
        assert s.call("GET", "/", cookies={"session": cookie}).status_code == 200
        s.call("GET", "/logout", cookies={"session": cookie})
        assert with_cookie(cookie) == 401
        assert s.call("GET", "/", cookies={"session": cookie}).status_code == 302

        # revoking the person ends every session of theirs
        cookie = _login(s, editor)
        assert with_cookie(cookie) == 200
        services.revoke_user("sam")
        assert with_cookie(cookie) == 401

        # rotating a person's token ends the sessions opened with the old one
        _, bob = services.add_user("bob", "viewer")
        cookie = _login(s, bob)
        _, bob_new = services.rotate_user_token("bob")
        assert with_cookie(cookie) == 401
        assert s.call("GET", "/api/v1/workloads", bob).status_code == 403
        assert s.call("GET", "/api/v1/workloads", bob_new).status_code == 200

        # rotating the admin token (the CLI, another process) ends the admin's sessions and the old token
        cookie = _login(s, s.token)
        assert with_cookie(cookie) == 200
        env = {**os.environ, "HOPPER_HOME": str(services.settings.home),
               "HOPPER_DATABASE_URL": services.settings.database_url,
               "HOPPER_ARTIFACT_DIR": str(services.settings.artifact_dir)}
        out = subprocess.run([sys.executable, "-m", "hopper.cli", "token", "--rotate"], env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        new_admin = out.stdout.strip()
        assert new_admin and new_admin != s.token
        assert with_cookie(cookie) == 401
        _refused(s.call("GET", "/api/v1/workloads", s.token))
        assert s.call("GET", "/api/v1/workloads", new_admin).status_code == 200

        # device and enrolment tokens do not open the UI
        enrol = services.create_enrolment_token()
        assert s.call("POST", "/login", data={"token": enrol}).status_code == 403


def test_secure_cookie_and_hsts_behind_an_https_public_url(services, digits):
    services.settings = services.settings.with_overrides(public_url="https://hopper.example.org")
    with serving(services) as s:
        r = s.call("POST", "/login", data={"token": s.token})
        assert r.status_code == 302
        cookie = r.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie
        assert r.headers["Strict-Transport-Security"].startswith("max-age=")


# -- DNS rebinding ---------------------------------------------------------------------------------------------
def test_with_auth_off_only_loopback_host_headers_are_served(services, digits):
    with serving(services, no_auth=True) as s:
        port = s.base.rsplit(":", 1)[1]
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "localhost"):
            assert s.call("GET", "/api/v1/workloads", headers={"Host": host}).status_code == 200, host
        spec = {"name": "w", "model": "mlp", "dataset": "digits", "space": GRID, "max_epochs": 1}
        for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}",
                     f"localhost:{int(port) + 1}", f"127.0.0.1:{port}@evil"):
            for method, path, body in (("GET", "/api/v1/workloads", None), ("POST", "/api/v1/workloads", spec),
                                       ("POST", "/api/v1/scripts", {"name": "x.py", "content": "x = 1"}),
                                       ("GET", "/", None)):
                error = _refused(s.call(method, path, headers={"Host": host}, json=body), 400)
                assert error["field"] == "Host", (host, path)
        assert services.list_workloads() == []  # nothing was launched through a rebound name


# -- health ----------------------------------------------------------------------------------------------------
def test_healthz_is_open_and_reports_the_store(services, digits, tmp_path):
    from hopper.engine.services import Services
    from hopper.engine.store import Store
    from tests.conftest import make_settings

    with serving(services) as s:
        r = s.call("GET", "/healthz")
        assert r.status_code == 200 and r.json() == {"status": "ok", "store": "ok"}
    # a store that cannot be opened any more: 503 with the kind of failure, and no path or URL
    settings = make_settings(tmp_path / "broken")
    store = Store(settings.database_url, check_schema=False)
    store.upgrade()
    broken = Services(store, settings)
    with serving(broken) as s:
        store.dispose()
        db = Path(settings.database_url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        db.mkdir()  # a directory where the database was: SQLite cannot open it
        r = s.call("GET", "/healthz")
        assert r.status_code == 503 and r.json() == {"status": "unavailable", "store": "store_unavailable"}


# -- exposure --------------------------------------------------------------------------------------------------
def test_the_store_file_is_0600_and_the_artefact_directory_0700(tmp_path):
    from hopper.app import open_services
    from tests.conftest import make_settings

    settings = make_settings(tmp_path / "home")
    services = open_services(settings, check_schema=False)
    services.store.upgrade()
    services.add_user("someone", "viewer")  # a write, so the WAL exists
    try:
        db = Path(settings.database_url.removeprefix("sqlite:///"))
        for path in (db, Path(f"{db}-wal")):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(settings.artifact_dir.stat().st_mode) == 0o700
    finally:
        services.store.dispose()
    # files someone loosened are tightened on the next start
    os.chmod(db, 0o644)
    os.chmod(settings.artifact_dir, 0o755)
    open_services(settings, check_schema=False).store.dispose()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.artifact_dir.stat().st_mode) == 0o700


def _hopper_env(home: Path) -> dict:
    return {**os.environ, "HOPPER_HOME": str(home), "HOPPER_DATABASE_URL": f"sqlite:///{home / 'hopper.db'}",
            "HOPPER_ARTIFACT_DIR": str(home / "artifacts"), "PYTHONUNBUFFERED": "1"}


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hopper.cli", *args], env=_hopper_env(home), capture_output=True,
                          text=True, timeout=180)


def _unwrapped(text: str) -> str:
    """A log as written, without the line breaks the console puts into long paths (80 columns into a file: a
    longer temporary directory, as under pytest-xdist, split "api-token" across two lines)."""
    return text.replace("\n", "")


def test_serve_never_prints_the_token_and_warns_about_plain_http(tmp_path):
    home = tmp_path / "home"
    assert _cli(home, "db", "upgrade").returncode == 0
    for host, warned in (("127.0.0.1", False), ("0.0.0.0", True)):  # noqa: S104
        port = free_port()
        log = tmp_path / f"serve-{port}.log"
        with log.open("w") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "hopper.cli", "serve", "--host", host, "--port", str(port),
                                     "--no-tensorboard", "--no-export-worker"], env=_hopper_env(home), stdout=fh,
                                    stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, log.read_text()
                try:
                    if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200 and \
                            "api-token" in _unwrapped(log.read_text()):
                        break
                except requests.ConnectionError:
                    pass
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        finally:
            proc.terminate()
            proc.wait(30)
        output = log.read_text()
        token = (home / "api-token").read_text().strip()
        assert token not in output and token not in _unwrapped(output)
        assert "hopper token" in " ".join(output.split()) and "api-token" in _unwrapped(output)
        assert ("WARNING: plain HTTP" in output) == warned, output
        assert stat.S_IMODE((home / "api-token").stat().st_mode) == 0o600
    shown = _cli(home, "token")
    assert shown.returncode == 0 and shown.stdout.strip() == token  # on demand only

    # waitress cannot terminate TLS: a clear error pointing at the reverse-proxy setup, exit code 2
    out = _cli(home, "serve", "--tls-cert", str(tmp_path / "c.pem"), "--tls-key", str(tmp_path / "k.pem"))
    assert out.returncode == 2
    assert "reverse proxy" in out.stderr and "public_url" in out.stderr


def test_script_rejections_carry_no_server_paths(services, digits):
    script = "import os\n\ndef build_model(hp):\n    open('/nonexistent/dir/weights.h5')\n"
    with serving(services) as s:
        r = s.call("POST", "/api/v1/scripts", s.token, json={"name": "bad.py", "content": script})
        assert r.status_code == 202, r.text  # validated in the contained pool; poll for the verdict
        script_id = r.json()["id"]
        deadline = time.monotonic() + 180
        while (r := s.call("GET", f"/api/v1/scripts/{script_id}", s.token)).json()["validation"].get(
                "state") == "pending":
            assert time.monotonic() < deadline, "the validation never finished"
            time.sleep(0.2)
        text = r.text
        validation = r.json()["validation"]
        assert r.json()["valid"] is False and validation["details"] and "…/weights.h5" in validation["details"]
        for secret in (str(services.settings.home), str(services.settings.artifact_dir), sys.prefix,
                       str(Path(__file__).resolve().parents[2])):
            assert secret not in text, secret
        assert "/usr/" not in text and "site-packages" not in text
        # a dataset outside the data roots: the roots are named, not spelt
        r = s.call("POST", "/api/v1/datasets", s.token, json={"name": "x", "path": "/etc/passwd"})
        assert r.status_code in (400, 403), r.text
        assert str(services.settings.data_roots[0]) not in r.text and str(services.settings.home) not in r.text


# -- the CLI -----------------------------------------------------------------------------------------------------
def test_user_and_device_commands(tmp_path):
    home = tmp_path / "home"
    assert _cli(home, "db", "upgrade").returncode == 0
    added = _cli(home, "user", "add", "carol", "--role", "editor")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert token.startswith("hop_") and "shown only now" in added.stderr
    listed = _cli(home, "user", "list")
    assert listed.returncode == 0 and "carol" in listed.stdout and "editor" in listed.stdout
    assert token not in listed.stdout
    again = _cli(home, "user", "add", "carol", "--role", "viewer")
    assert again.returncode == 4 and "already exists" in again.stderr  # Conflict
    bad = _cli(home, "user", "add", "admin", "--role", "viewer")
    assert bad.returncode == 2 and "bootstrap admin" in bad.stderr
    rotated = _cli(home, "user", "rotate", "carol")
    assert rotated.returncode == 0 and rotated.stdout.strip().startswith("hop_") and rotated.stdout.strip() != token
    assert _cli(home, "user", "revoke", "carol").returncode == 0
    gone = _cli(home, "user", "revoke", "carol")
    assert gone.returncode == 3 and "no active user" in gone.stderr
    enrol = _cli(home, "device", "enrol-token")
    assert enrol.returncode == 0 and enrol.stdout.strip().startswith("hop_")


@pytest.mark.parametrize("name", ["", "a b", "x" * 101, "-lead", "dev:ice"])
def test_names_are_checked(services, name):
    from hopper.engine.errors import ValidationError

    with pytest.raises(ValidationError) as info:
        services.add_user(name, "viewer")
    assert info.value.field == "name"

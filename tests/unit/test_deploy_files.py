"""docker-compose.yml and the Dockerfile cannot run here (no Docker), so they are checked by reading them.

Every command a container runs must parse against the real CLI, every HOPPER_* variable must be a
setting, every package the wheel needs must be copied into the image, and the health check URL
must answer on the real app.
"""

import shlex
import tomllib
import warnings
from pathlib import Path

import click
import pytest
import yaml

from hopper.cli import main
from hopper.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"postgres", "spark-master", "spark-worker-1", "spark-worker-2", "hopper-scheduler", "hopper-web"}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _hopper_commands(command) -> list[list[str]]:
    """The `hopper ...` invocations in a compose command (a list, or `sh -c "a && exec b"`)."""
    if isinstance(command, str):
        command = shlex.split(command)
    if command[:2] == ["sh", "-c"]:
        parts = [shlex.split(p) for p in command[2].split("&&")]
        return [p[1:] if p[0] == "exec" else p for p in parts if p and (p[0] == "hopper" or p[1:2] == ["hopper"])]
    return [command] if command and command[0] == "hopper" else []


def _parse_cli(argv: list[str]) -> None:
    """Parse argv with the real click commands (unknown commands or options raise UsageError)."""
    assert argv[0] == "hopper"
    ctx = main.make_context("hopper", list(argv[1:]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        remaining = [*ctx.protected_args, *ctx.args]
    while remaining:
        name, command, rest = ctx.command.resolve_command(ctx, remaining)
        ctx = command.make_context(name, rest, parent=ctx)
        if not isinstance(command, click.Group):
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            remaining = [*ctx.protected_args, *ctx.args]


def test_compose_declares_the_services_with_health_checks(compose):
    services = compose["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        assert "healthcheck" in service, name
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith(("/", ".")) or source in compose["volumes"], (name, volume)


def test_every_hopper_command_in_compose_parses_against_the_cli(compose):
    commands = [c for s in compose["services"].values() if "command" in s for c in _hopper_commands(s["command"])]
    assert len(commands) >= 5  # master, two workers, db upgrade + serve, scheduler
    for argv in commands:
        _parse_cli(argv)
    with pytest.raises(click.UsageError):
        _parse_cli(["hopper", "scheduler", "--no-such-option"])  # the check itself can fail


def test_compose_environment_is_made_of_real_settings(compose):
    for name, service in compose["services"].items():
        env = service.get("environment", {})
        hopper_env = {k: str(v) for k, v in env.items() if k.startswith("HOPPER_")}
        if not hopper_env:
            continue
        settings = load_settings(hopper_env)
        known = {"HOPPER_HOME"} | {f"HOPPER_{f.upper()}" for f in settings.__dataclass_fields__}
        assert set(hopper_env) <= known, (name, set(hopper_env) - known)
        assert settings.database_url.startswith("postgresql+psycopg://") and "@postgres:" in settings.database_url


def test_the_image_copies_every_package_the_wheel_needs():
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            *sources, _target = line.split()[1:]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY source {source} is missing"
                copied.add(source.rstrip("/"))
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    top_level = {path.split("/")[0] for path in package_dirs.values()}
    assert top_level <= copied, f"packages missing from the image: {top_level - copied}"
    cmd = next(line for line in dockerfile.splitlines() if line.startswith("CMD "))
    _parse_cli(yaml.safe_load(cmd[4:]))


def test_the_health_check_url_answers_without_a_token(services):
    from hopper.rest import create_app

    client = create_app(services, token="secret", secret_key="k" * 32).test_client()
    assert client.get("/healthz").get_json() == {"status": "ok", "store": "ok"}
    assert client.get("/api/v1/workloads").status_code == 401


def test_the_compose_health_check_reads_the_json_status(compose, services):
    """The web service's health check, run as compose runs it, passes on /healthz and fails on a login redirect."""
    import subprocess
    import sys
    import threading

    from waitress import create_server

    from hopper.serve import build_app
    from tests.support.postgres import free_port

    command = compose["services"]["hopper-web"]["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python", "-c"] and "localhost:8050/healthz" in command[3]
    wsgi, _ = build_app(services, host="127.0.0.1", no_auth=False, tensorboard_port=None)
    port = free_port()
    server = create_server(wsgi, host="127.0.0.1", port=port, threads=2)
    threading.Thread(target=server.run, daemon=True).start()
    try:
        def check(path: str) -> int:
            script = command[3].replace("localhost:8050/healthz", f"127.0.0.1:{port}{path}")
            return subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60).returncode

        assert check("/healthz") == 0
        assert check("/") != 0  # a 302 to the login page (curl -fsS would have passed it)
    finally:
        server.close()

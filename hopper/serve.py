"""``hopper serve``: the UI and REST API under waitress, TensorBoard beside them, optionally the scheduler."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from hopper.engine.errors import ValidationError
from hopper.engine.services import Services
from hopper.rest.auth import TOKEN_FILE, AdminTokenFile, is_loopback, session_secret

log = logging.getLogger("hopper.serve")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM it when the server dies, even by kill -9."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_tensorboard(logdir: Path, host: str) -> tuple[subprocess.Popen, int]:
    """TensorBoard on the event files of every workload (its own process: it imports TensorFlow)."""
    logdir.mkdir(parents=True, exist_ok=True)
    port = free_port(host)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", host, "--port", str(port),
         "--reload_interval", "5"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        preexec_fn=_die_with_parent)
    return proc, port


TLS_HELP = ("waitress serves plain HTTP only: put a TLS-terminating reverse proxy (Caddy, nginx) in front of "
            "`hopper serve --host 127.0.0.1` and set public_url = \"https://your.host\" in hopper.toml (or "
            "HOPPER_PUBLIC_URL) so that session cookies are Secure and HSTS is sent; see README, Security")


def behind_https(services: Services) -> bool:
    """Whether people reach this server over HTTPS (a reverse proxy, announced by the ``public_url`` setting)."""
    url = getattr(services.settings, "public_url", None) or ""
    return url.lower().startswith("https://")


def build_app(services: Services, *, host: str, no_auth: bool, tensorboard_port: int | None,  # noqa: ANN201
              port: int | None = None):
    """The WSGI app (Dash + REST on one Flask server) and the admin token now (None when auth is off).

    The app re-reads the token file when it changes, so ``hopper token --rotate`` takes effect at once.

    Both run behind one authentication gate (``hopper.rest.gate``, installed by ``create_dash``): one
    ``before_request`` hook decides for every path, so no endpoint of either can be left outside it.
    """
    from flask import request

    from hopper.webui import create_dash

    if no_auth and not is_loopback(host):
        raise ValidationError(f"--no-auth is only allowed on loopback (127.0.0.1), not {host}", field="host")
    home = services.settings.home
    token = None if no_auth else AdminTokenFile(home)

    def tensorboard_url() -> str | None:
        if tensorboard_port is None:
            return None
        visible_host = request.host.rsplit(":", 1)[0] if request else "127.0.0.1"
        return f"http://{visible_host}:{tensorboard_port}/"

    app = create_dash(services, token=token, secret_key=session_secret(home), tensorboard_url=tensorboard_url,
                      port=port, secure_cookies=behind_https(services))
    return app.server, (token() if token is not None else None)


def serve(services: Services, *, host: str = "127.0.0.1", port: int = 8050, no_auth: bool = False,
          tensorboard: bool = True, scheduler: object | None = None, threads: int = 8,
          announce=print, export_worker: bool = True, tls_cert: str | None = None,  # noqa: ANN001
          tls_key: str | None = None) -> None:
    """Serve until interrupted; runs ``scheduler`` (if given) and the export worker in background threads.

    The token is never printed (start-up output lands in logs): only where it lies, and ``hopper token``.
    """
    from waitress import create_server

    if tls_cert or tls_key:
        raise ValidationError(f"--tls-cert/--tls-key: {TLS_HELP}", field="tls-cert" if tls_cert else "tls-key")
    if not is_loopback(host) and not behind_https(services):
        log.warning("serving plain HTTP on %s: tokens and session cookies cross the network in clear text. %s",
                    host, TLS_HELP)
        announce(f"WARNING: plain HTTP on {host}, not loopback. {TLS_HELP}")

    if scheduler is not None:
        # Before anything starts: a second scheduler on this store is refused with the holder's name (LeaseHeld).
        scheduler.acquire_lease()
    tb_proc, tb_port = None, None
    if tensorboard:
        tb_proc, tb_port = start_tensorboard(services.tensorboard_dir(0).parent, host)
    if threading.current_thread() is threading.main_thread():
        # `kill` (SIGTERM) shuts down as cleanly as Ctrl-C: stop the scheduler, close TensorBoard.
        signal.signal(signal.SIGTERM, _interrupt)
    wsgi, token = build_app(services, host=host, no_auth=no_auth, tensorboard_port=tb_port, port=port)
    stop = threading.Event()
    if scheduler is not None:
        thread = threading.Thread(target=scheduler.run, kwargs={"stop_event": stop}, name="scheduler", daemon=True)
        thread.start()
    if export_worker:  # export and deployment requests run as child processes: TensorFlow stays out of this one
        from hopper.edge_deploy.runner import ExportWorker

        threading.Thread(target=ExportWorker(services).run, args=(stop,), name="export-worker", daemon=True).start()
    server = create_server(wsgi, host=host, port=port, threads=threads)
    announce(f"Hopper UI: http://{host}:{port}/   REST API: http://{host}:{port}/api/docs")
    if token is None:
        announce("auth disabled (loopback only)")
    else:
        announce("admin token: `hopper token` prints it; people get their own with `hopper user add`")
        announce(f"(kept 0600 in {services.settings.home / TOKEN_FILE})")
    if tb_port:
        announce(f"TensorBoard: http://{host}:{tb_port}/")
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.close()
        if tb_proc is not None:
            tb_proc.terminate()
            try:
                tb_proc.wait(10)
            except subprocess.TimeoutExpired:
                tb_proc.kill()
        if scheduler is not None:
            thread.join(30)

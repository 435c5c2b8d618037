"""API tokens and the signing secret: created on first use, stored 0600 under HOPPER_HOME."""

from __future__ import annotations

import hmac
import os
import secrets
import threading
from pathlib import Path

TOKEN_FILE = "api-token"
SECRET_FILE = "session-secret"


def _read_or_create(path: Path, nbytes: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            os.chmod(path, 0o600)  # tighten a file someone loosened
        return path.read_text().strip()
    value = secrets.token_urlsafe(nbytes)
    # O_EXCL: two processes starting at once must not both write (the loser reads the winner's).
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def api_token(home: Path) -> str:
    """The bearer token for the REST API and the UI login (created on first call)."""
    return _read_or_create(Path(home) / TOKEN_FILE, 32)


def rotate_api_token(home: Path) -> str:
    """Replace the bootstrap admin token with a fresh one (written 0600 next to it, then renamed over it)."""
    path = Path(home) / TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{TOKEN_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    os.replace(tmp, path)
    return value


class AdminTokenFile:
    """The bootstrap admin token as the server sees it: re-read when the file changes (``hopper token --rotate``),
    so a rotated token stops working on a running server at once, without a restart."""

    def __init__(self, home: Path) -> None:
        self.path = Path(home) / TOKEN_FILE
        self._value = api_token(home)
        self._stamp = self._stat()
        self._lock = threading.Lock()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_ino

    def __call__(self) -> str:
        stamp = self._stat()
        if stamp != self._stamp and stamp is not None:
            with self._lock:
                self._value, self._stamp = self.path.read_text().strip(), stamp
        return self._value


def session_secret(home: Path) -> str:
    """The key that signs the UI's session cookie (created on first call)."""
    return _read_or_create(Path(home) / SECRET_FILE, 48)


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so response timing does not leak the token."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (where --no-auth is allowed)."""
    return host in ("127.0.0.1", "localhost", "::1")

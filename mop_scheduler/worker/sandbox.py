"""A guard for processes that run users' model code (training workers, script validation).

Python audit hooks refuse network connections and file access outside an allow-list (the roots the
caller names, the interpreter's own files, /proc, /sys, /dev, and a private temp dir). This stops an uploaded
script from casually reading ``/etc/shadow`` or phoning home, and turns the attempt into a clear
error on its config. After ``lock_down()`` (called once Hopper's own imports are done, since TensorFlow itself starts a helper
process and loads libraries with ctypes) the guard also refuses starting processes (``os.system``,
``subprocess``, ``os.exec*``, ``os.fork``, ``posix_spawn``, ``pty.spawn``) and ``ctypes`` library loads and
symbol lookups. It is a guard rail, not a security boundary: code that reaches the interpreter's internals
(``_posixsubprocess``, a C extension of its own) can get around audit hooks. The boundaries below it are the
process group with rlimits, the network namespace and the dedicated sandbox user (see the README).
"""

from __future__ import annotations

import _socket
import os
import site
import socket
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

_installed = False
_locked = False
_FAMILY = _socket.socket.family
_PROCESS_AND_FFI_EVENTS = frozenset({
    "os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "pty.spawn", "ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle", "os.kill", "os.killpg"})
# > 0 while Hopper itself does remote I/O (checkpoints at an fsspec URL) in a guarded worker. A counter,
# not a context variable: fsspec's async filesystems connect from their own event-loop thread.
_trusted_io = 0


@contextmanager
def trusted_io() -> Iterator[None]:
    """Let Hopper's own code (not the user's) reach the network or files, e.g. to write a checkpoint to s3://."""
    global _trusted_io
    _trusted_io += 1
    try:
        yield
    finally:
        _trusted_io -= 1


def _system_roots() -> list[str]:
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sysconfig.get_paths()["stdlib"],
             sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
             "/proc", "/sys", "/dev", "/usr", "/lib", "/lib64", "/etc/localtime", "/etc/ssl",
             os.path.expanduser("~/.keras"), os.path.expanduser("~/.cache")}
    roots.update(site.getsitepackages() + [site.getusersitepackages()])
    # Site dirs a .pth file added (a venv layered on another one's packages): not in getsitepackages().
    roots.update(p for p in sys.path if os.path.basename(p.rstrip("/")) in ("site-packages", "dist-packages"))
    return [os.path.realpath(r) for r in roots if r]


def lock_down() -> None:
    """From now on, refuse starting processes, sending signals and ctypes loads (after Hopper's own imports)."""
    global _locked
    _locked = True


def install_guard(allowed_roots: Iterable[str], private_tmp: str) -> None:
    """Refuse AF_INET/AF_INET6 sockets and opening files outside ``allowed_roots`` (plus system dirs).

    The caller names every directory the process may read: the data roots, the artefact or script
    dir, and Hopper's own package dirs (``hopper_package_roots()``), which an editable install keeps
    outside site-packages. This module imports no Hopper package, so that it knows nothing of the
    layout it guards. ``private_tmp`` becomes this process's temp dir, so that the shared /tmp
    stays out of reach.
    """
    global _installed
    if _installed:
        return
    os.makedirs(private_tmp, exist_ok=True)
    os.environ["TMPDIR"] = private_tmp
    import tempfile

    tempfile.tempdir = private_tmp
    allowed = tuple(sorted({os.path.realpath(str(r)) for r in (*allowed_roots, private_tmp)} | set(_system_roots())))

    def permitted(path: str) -> bool:
        real = os.path.realpath(path)
        return any(real == root or real.startswith(root.rstrip("/") + "/") for root in allowed)

    def hook(event: str, args: tuple) -> None:
        if _trusted_io:
            return
        if _locked and event in _PROCESS_AND_FFI_EVENTS:
            raise PermissionError(f"user code may not start processes, send signals or load native code "
                                  f"({event} refused by Hopper's sandbox)")
        if event == "open":
            path = args[0]
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            if isinstance(path, str) and not permitted(path):
                raise PermissionError(f"Hopper workers may not open {path}: it is outside the data roots")
        elif event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"):
            # The C type's own descriptor: a subclass could override ``family`` and claim to be AF_UNIX.
            family = _FAMILY.__get__(args[0]) if isinstance(args[0], _socket.socket) else None
            if family in (socket.AF_INET, socket.AF_INET6):
                raise PermissionError("network access is not allowed while training or validating a model")
        elif event == "socket.getaddrinfo":
            raise PermissionError("network access is not allowed while training or validating a model")

    sys.addaudithook(hook)
    _installed = True

"""OS-level confinement of a process that is about to run users' code (validation child, training worker).

``enter(plan)`` is called by the process itself, as root, before it imports any user code. It takes, each
only where the machine allows it:

* **netns**: a network namespace of its own (``unshare(CLONE_NEWNET)``): no interface but a loopback that is
  down, so even a raw ``_socket`` connect that never meets the audit hook fails with ``ENETUNREACH``;
* **view**: a mount namespace whose root is a fresh tmpfs holding bind mounts of only the interpreter, the
  packages, Hopper's code and system libraries (read-only), the data the process reads (read-only), and its
  scratch and checkpoint directories (read-write); the store, the API token and every other file of the
  server are not there at all;
* **user**: the dedicated unprivileged user (``setgroups([])``, ``setgid``, ``setuid``, then
  ``PR_SET_NO_NEW_PRIVS``), so that what is in the view is read with that user's permissions (a 0600 file of
  root's stays closed) and nothing can turn back into root;

and reports which it got (``Layers``). A layer that cannot be had (not root, no ``CAP_SYS_ADMIN`` in a
container, the user missing or unable to read the interpreter without a view) is left out, never faked: the
caller logs what is active and shows it in the validation verdict. The plan is plain data (JSON), because the
parent decides it and the child, started fresh, applies it.

Like ``sandbox``, this module imports no Hopper package: it knows only the paths its caller names.
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

_CLONE_NEWNS = 0x00020000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
_PR_SET_NO_NEW_PRIVS = 38
_MNT_DETACH = 2

#: What a program needs from /etc to start and resolve names of users; the rest of /etc stays out of the view.
_ETC_FILES = ("/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/ld.so.cache", "/etc/ld.so.conf",
              "/etc/ld.so.conf.d", "/etc/localtime", "/etc/ssl", "/etc/hosts", "/etc/host.conf", "/etc/mime.types",
              "/etc/fonts")
_SYSTEM_DIRS = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/opt")
_DEVICES = ("null", "zero", "full", "random", "urandom")


@dataclass(frozen=True)
class Plan:
    """What ``enter`` should take: the user (empty: none), a network namespace, and the view's directories.

    ``readable`` and ``writable`` are the directories user code needs besides the runtime (the data roots, the
    scripts, the checkpoint and scratch directories); ``scratch`` becomes ``HOME`` and ``TMPDIR``.
    """

    user: str = ""
    netns: bool = True
    view: bool = True
    readable: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()
    scratch: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Plan:
        raw = json.loads(text)
        return cls(**{**raw, "readable": tuple(raw.get("readable", ())), "writable": tuple(raw.get("writable", ()))})


@dataclass
class Layers:
    """The layers a confined process actually has, and why each missing one is missing."""

    user: str = ""  # "hopper-sandbox (uid 999)" when the identity was dropped
    netns: bool = False
    view: bool = False
    missing: dict[str, str] = field(default_factory=dict)

    def describe(self, *, rlimits: bool = True, audit_hook: bool = True) -> str:
        """One line: every layer, on or off with the reason (for logs and the validation verdict)."""
        parts = [f"user {self.user}" if self.user else f"no user switch ({self.missing.get('user', 'off')})",
                 "network namespace" if self.netns else f"no network namespace ({self.missing.get('netns', 'off')})",
                 "filesystem view" if self.view else f"no filesystem view ({self.missing.get('view', 'off')})"]
        parts += ["rlimits" if rlimits else "no rlimits", "audit hook" if audit_hook else "no audit hook"]
        return "sandbox: " + ", ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def runtime_paths(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The interpreter, the venv, every site dir on ``sys.path`` and the caller's package dirs (read-only)."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
                sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    # Site dirs only (a venv layered on another one's packages adds them with a .pth file): not the working
    # directory that ``python -m`` puts first, which may be the server's home.
    sites = {p for p in sys.path if p and os.path.isdir(p) and os.path.basename(p.rstrip("/")) in
             ("site-packages", "dist-packages")}
    return tuple(sorted(p for p in {*prefixes, *sites, *extra} if p))


def _mount(libc: ctypes.CDLL, source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    def enc(text: str | None) -> bytes | None:
        return None if text is None else os.fsencode(text)

    _check(libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {source} on {target}")


def _build_view(libc: ctypes.CDLL, readable: Iterable[str], writable: Iterable[str]) -> None:
    """A new mount namespace whose root holds only the named paths; this process then chroots into it."""
    _check(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # Private: nothing mounted here propagates back to the host (or from it).
    _mount(libc, None, "/", None, _MS_REC | _MS_PRIVATE)
    root = "/tmp"
    # Sources are opened in the new namespace (a bind from another namespace's mount is EINVAL) but before
    # anything is mounted over /tmp, since a source may lie under it: binding from /proc/self/fd/N then
    # reaches them wherever they are.
    binds: list[tuple[str, int, bool]] = []  # (target in the view, O_PATH fd of the source, writable)
    symlinks: dict[str, str] = {}
    for path, rw in [*((p, False) for p in readable), *((p, True) for p in writable)]:
        path = os.path.abspath(path)
        if os.path.islink(path) and path in _SYSTEM_DIRS:
            symlinks[path] = os.readlink(path)  # /lib64 -> usr/lib64 on a merged-/usr system
            continue
        if not os.path.exists(path):
            continue
        real = os.path.realpath(path)
        for target in {path, real}:
            binds.append((target, os.open(real, os.O_PATH | os.O_CLOEXEC), rw))
    try:
        _populate(libc, root, binds, symlinks)
    except OSError:
        # Leave the host's tree as it was in this namespace, so that the process can go on without a view.
        libc.umount2(os.fsencode(root), _MNT_DETACH)
        for _target, fd, _rw in binds:
            try:
                os.close(fd)
            except OSError:
                pass
        raise
    os.chroot(root)
    os.chdir("/")


def _populate(libc: ctypes.CDLL, root: str, binds: list[tuple[str, int, bool]], symlinks: dict[str, str]) -> None:
    _mount(libc, "tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=16m")
    # The view's own /tmp first: binds of directories that lie under the host's /tmp go inside it.
    os.makedirs(root + "/tmp")
    _mount(libc, "tmpfs", root + "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=1777,size=256m")
    # Parents before children, so that a writable checkpoint dir inside a read-only tree is bound on top.
    for target, fd, rw in sorted(binds, key=lambda b: (b[0].count("/"), b[0])):
        inside = root + target
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(inside, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(inside), exist_ok=True)
            if not os.path.exists(inside):
                open(inside, "w").close()
        _mount(libc, f"/proc/self/fd/{fd}", inside, None, _MS_BIND | _MS_REC)
        flags = _MS_REMOUNT | _MS_BIND | _MS_NOSUID | _MS_NODEV | (0 if rw else _MS_RDONLY)
        _mount(libc, None, inside, None, flags)
    for link, dest in symlinks.items():
        os.makedirs(os.path.dirname(root + link), exist_ok=True)
        os.symlink(dest, root + link)
    # /proc and /sys as the host has them (no PID namespace: other processes are listed, their files are
    # guarded by their owners' permissions); a /dev of a few harmless devices; private /tmp and /dev/shm.
    for special, rw in (("/proc", True), ("/sys", False)):
        os.makedirs(root + special, exist_ok=True)
        _mount(libc, special, root + special, None, _MS_BIND | _MS_REC)
        if not rw:
            _mount(libc, None, root + special, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    os.makedirs(root + "/dev", exist_ok=True)
    _mount(libc, "tmpfs", root + "/dev", "tmpfs", _MS_NOSUID, "mode=0755,size=64k")
    os.makedirs(root + "/dev/shm")
    _mount(libc, "tmpfs", root + "/dev/shm", "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=1777,size=256m")
    gpus = [d for d in os.listdir("/dev") if d.startswith("nvidia")]
    for device in (*_DEVICES, *gpus):
        if os.path.exists(f"/dev/{device}") and not os.path.isdir(f"/dev/{device}"):
            open(f"{root}/dev/{device}", "w").close()
            _mount(libc, f"/dev/{device}", f"{root}/dev/{device}", None, _MS_BIND)
    for _target, fd, _rw in binds:
        os.close(fd)


def _can_run_as(uid: int, gid: int, paths: Iterable[str], writable: Iterable[str] = ()) -> str:
    """Empty when ``uid`` can read every path, write every writable one and run the interpreter; else the first
    path it cannot use. Without a view this is where a 0700 directory above the interpreter or the data shows."""
    os.setegid(gid)
    os.seteuid(uid)
    try:
        if not os.access(sys.executable, os.X_OK, effective_ids=True):
            return sys.executable
        for path, write in [*((p, False) for p in paths), *((p, True) for p in writable)]:
            mode = os.R_OK | (os.X_OK if os.path.isdir(path) else 0) | (os.W_OK if write else 0)
            if os.path.exists(path) and not os.access(path, mode, effective_ids=True):
                return path
        return ""
    finally:
        os.seteuid(0)
        os.setegid(0)


def enter(plan: Plan, *, runtime: Iterable[str] = ()) -> Layers:
    """Confine the calling process as far as ``plan`` asks and the machine allows; returns what it got.

    Call it while the process is single-threaded and before any user code: namespaces taken by one thread
    are that thread's alone. ``runtime`` adds read-only directories (Hopper's packages) to the view.
    """
    layers = Layers()
    root = os.geteuid() == 0
    libc = _libc() if root else None
    if plan.netns:
        if libc is None:
            layers.missing["netns"] = "not running as root"
        else:
            try:
                _check(libc.unshare(_CLONE_NEWNET), "unshare(CLONE_NEWNET)")
                layers.netns = True
            except OSError as exc:
                layers.missing["netns"] = exc.strerror or str(exc)
    else:
        layers.missing["netns"] = "the process needs the network (checkpoints at a URL)"
    needed = runtime_paths(runtime)
    if plan.view:
        if libc is None:
            layers.missing["view"] = "not running as root"
        else:
            readable = (*needed, *_SYSTEM_DIRS, *_ETC_FILES, *plan.readable)
            try:
                _build_view(libc, readable, (*plan.writable, *([plan.scratch] if plan.scratch else [])))
                layers.view = True
            except OSError as exc:
                # A failed unshare leaves the host's mounts untouched; a failure after it leaves this process
                # in a half-built namespace that it does not use (no chroot happened).
                layers.missing["view"] = exc.strerror or str(exc)
    else:
        layers.missing["view"] = "off"
    if plan.scratch:
        os.environ["HOME"] = os.environ["TMPDIR"] = plan.scratch
    if not plan.user:
        layers.missing["user"] = "no sandbox user configured"
    elif not root:
        layers.missing["user"] = "not running as root"
    else:
        try:
            entry = pwd.getpwnam(plan.user)
        except KeyError:
            layers.missing["user"] = f"user {plan.user} does not exist (the install step creates it)"
        else:
            os.setgroups([])  # root's own groups must not make the check below pass
            blocked = _can_run_as(entry.pw_uid, entry.pw_gid, (*needed, *plan.readable),
                                  (*plan.writable, *([plan.scratch] if plan.scratch else [])))
            if blocked:
                layers.missing["user"] = f"{plan.user} cannot read {blocked}"
            else:
                os.setgroups([])
                os.setgid(entry.pw_gid)
                os.setuid(entry.pw_uid)
                _check(_libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
                layers.user = f"{plan.user} (uid {entry.pw_uid})"
    return layers


def identity(user: str) -> tuple[int, int] | None:
    """(uid, gid) of ``user`` when this process is root and could hand files over to it; else None."""
    if not user or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def hand_over(path: str, owner: tuple[int, int] | None) -> None:
    """Create directory ``path`` and give it to the sandbox user (who writes checkpoints or scratch files there).

    The server, root, still reads and removes whatever is written there.
    """
    os.makedirs(path, exist_ok=True)
    if owner is None:
        return
    st = os.stat(path)
    if (st.st_uid, st.st_gid) != owner:
        os.chown(path, *owner)

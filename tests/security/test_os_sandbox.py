"""The OS layers under the audit hook: user code runs as the unprivileged sandbox user, in a network namespace,
in a filesystem view that holds the runtime and its own data only. Each probe below goes around the audit hook
(``posix.open``, ``_socket``), so only the OS can stop it.

CI runs the suite as root after ``scripts/install-test-deps.sh`` created ``hopper-sandbox``: these tests need
both, and fail (never skip) without them.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import socket
import sys
import threading
import time

import pytest
import requests

from hopper.mop_scheduler.worker import hopper_package_roots
from hopper.mop_scheduler.worker.confine import Plan
from hopper.mop_scheduler.worker.validate import Limits, run_contained
from hopper.rest.auth import api_token

SANDBOX_USER = "hopper-sandbox"


@pytest.fixture(scope="module")
def sandbox_uid() -> int:
    assert os.geteuid() == 0, "the OS sandbox tests run as root (CI does)"
    try:
        return pwd.getpwnam(SANDBOX_USER).pw_uid
    except KeyError:
        pytest.fail(f"user {SANDBOX_USER} is missing: run scripts/install-test-deps.sh (as root) first")


# Runs in the confined child, as root until ``enter`` returns: then every probe, with no audit hook at all.
_PROBES = '''
import json, os, posix, sys, _socket
from hopper.mop_scheduler.worker.confine import Plan, enter
layers = enter(Plan.from_json(sys.argv[1]), runtime=json.loads(sys.argv[2]))
paths = json.loads(sys.argv[3])
out = {"layers": layers.to_dict(), "uid": os.getuid(), "euid": os.geteuid(), "groups": os.getgroups()}
def attempt(name, action):
    try:
        out[name] = ["ok", action()]
    except OSError as exc:
        out[name] = ["refused", exc.errno]
attempt("read_secret_in_view", lambda: os.read(posix.open(paths["secret"], os.O_RDONLY), 100).decode())
attempt("read_public_in_view", lambda: os.read(posix.open(paths["public"], os.O_RDONLY), 100).decode())
attempt("read_token", lambda: os.read(posix.open(paths["token"], os.O_RDONLY), 100).decode())
attempt("stat_store", lambda: posix.stat(paths["store"]).st_size)
attempt("write_data_root", lambda: posix.open(paths["data_root"] + "/planted", os.O_WRONLY | os.O_CREAT, 0o644))
def write_checkpoint():
    fd = posix.open(paths["checkpoint"], os.O_WRONLY | os.O_CREAT, 0o644)
    return os.write(fd, b"weights")
attempt("write_checkpoint", write_checkpoint)
def connect():
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect(("127.0.0.1", paths["port"]))
    return "connected"
attempt("raw_connect", connect)
attempt("become_root", lambda: os.setuid(0))
print(json.dumps(out))
'''


def test_user_code_runs_unprivileged_without_network_in_its_own_view(tmp_path, settings, sandbox_uid):
    """The three OS layers together, probed around the audit hook: a 0600 file of root's inside a data root
    stays closed (permission), the token and the store are not there (view), a raw connect to a port that
    listens on loopback fails (network namespace), the checkpoint dir takes writes that the server reads."""
    data_root = settings.data_roots[0]
    secret, public = data_root / "root-only.txt", data_root / "public.txt"
    secret.write_text("the server's secret")
    secret.chmod(0o600)
    public.write_text("training data")
    token = api_token(settings.home)
    store = settings.home / "hopper.db"
    store.write_bytes(b"SQLite format 3\0")
    store.chmod(0o600)
    checkpoints, scratch = tmp_path / "ckpt", tmp_path / "scratch"
    for directory in (checkpoints, scratch):
        directory.mkdir()
        os.chown(directory, sandbox_uid, -1)
    plan = Plan(user=SANDBOX_USER, readable=(str(data_root),), writable=(str(checkpoints),), scratch=str(scratch))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        paths = {"secret": str(secret), "public": str(public), "token": str(settings.home / "api-token"),
                 "store": str(store), "data_root": str(data_root), "checkpoint": str(checkpoints / "c.ckpt"),
                 "port": listener.getsockname()[1]}
        result = run_contained([sys.executable, "-c", _PROBES, plan.to_json(), json.dumps(hopper_package_roots()),
                                json.dumps(paths)], timeout=60, limits=Limits(), network=True)
        listener.settimeout(0.1)
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing reached the listening socket
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["layers"]["user"] == f"{SANDBOX_USER} (uid {sandbox_uid})" and out["layers"]["netns"] \
        and out["layers"]["view"], out["layers"]
    assert out["uid"] == out["euid"] == sandbox_uid != 0 and out["groups"] == []
    assert out["read_secret_in_view"] == ["refused", errno.EACCES]  # there, but root's 0600
    assert out["read_public_in_view"] == ["ok", "training data"]
    assert out["read_token"] == ["refused", errno.ENOENT]  # not in the view at all
    assert out["stat_store"] == ["refused", errno.ENOENT]
    assert out["write_data_root"] == ["refused", errno.EROFS]
    assert out["write_checkpoint"] == ["ok", 7] and (checkpoints / "c.ckpt").read_bytes() == b"weights"
    assert out["raw_connect"] == ["refused", errno.ENETUNREACH]
    assert out["become_root"] == ["refused", errno.EPERM]
    assert token and not (data_root / "planted").exists()


HOSTILE_UPLOAD = '''
import os, posix, socket, _socket
report = [f"uid={{os.getuid()}}"]
def attempt(name, action):
    try:
        action()
        report.append(f"{{name}}: DONE")
    except BaseException as exc:  # noqa
        report.append(f"{{name}}: {{type(exc).__name__}} {{getattr(exc, 'errno', '')}} {{exc}}".replace("/", "|"))
attempt("os.system", lambda: os.system("id > out.txt"))
def ctypes_token():
    import ctypes
    libc = ctypes.CDLL("libc.so.6")
    buf = ctypes.create_string_buffer(100)
    libc.read(libc.open({token!r}.encode(), 0), buf, 100)
attempt("ctypes token", ctypes_token)
attempt("fork sleep", lambda: os.system("sleep 323 &"))
attempt("20 GiB", lambda: bytearray(20 * 2**30))
attempt("socket", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=3))
attempt("raw token", lambda: posix.open({token!r}, os.O_RDONLY))
# Paths the audit hook lets through (/proc, the data roots) whose permissions the sandbox user lacks:
attempt("server environ", lambda: open(f"/proc/{{os.getppid()}}/environ", "rb").read())
attempt("root-only data", lambda: open({secret!r}).read())
class Liar(_socket.socket):
    family = property(lambda self: 1)  # claims AF_UNIX to the audit hook
attempt("raw socket", lambda: Liar().connect(("127.0.0.1", {port})))
attempt("udp sendmsg", lambda: _socket.socket(2, 2).sendmsg([b"x"], [], 0, ("127.0.0.1", {port})))
interfaces = [line.split(":")[0].strip() for line in open("/proc/self/net/dev").read().splitlines()[2:]]
report.append("interfaces: " + ",".join(interfaces))
raise RuntimeError("REPORT " + "; ".join(report))
'''


def test_a_hostile_upload_is_contained_layer_by_layer(settings, services, sandbox_uid):
    """One script uploaded through REST tries each attack of the issue; the verdict shows why each failed,
    that it ran as the sandbox user, and which layers held it: the audit hook where it applies, the OS below
    it (no interface but loopback; files the hook allows but the user's permissions do not)."""
    from waitress import create_server

    from hopper.rest import create_app

    token_path = str(settings.home / "api-token")
    app = create_app(services, token="t" * 20, secret_key="s" * 32)
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    base, headers = f"http://127.0.0.1:{server.effective_port}/api/v1", {"Authorization": "Bearer " + "t" * 20}
    try:
        api_token(settings.home)
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            secret = settings.data_roots[0] / "root-only.csv"
            secret.write_text("private")
            secret.chmod(0o600)
            content = HOSTILE_UPLOAD.format(token=token_path, port=listener.getsockname()[1], secret=str(secret))
            answer = requests.post(f"{base}/scripts", headers=headers, timeout=30,
                                   json={"name": "hostile.py", "content": content})
            assert answer.status_code == 202, answer.text
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                validation = requests.get(f"{base}/scripts/{answer.json()['id']}", headers=headers,
                                          timeout=30).json()["validation"]
                if validation["state"] != "pending":
                    break
                time.sleep(0.2)
            listener.settimeout(0.1)
            with pytest.raises(TimeoutError):
                listener.accept()
    finally:
        server.close()
    message = validation["message"]
    assert validation["state"] == "rejected" and "REPORT" in message, validation
    assert f"uid={sandbox_uid}" in message, message
    expected = {"os.system": "os.system refused", "ctypes token": "may not start processes, send signals or load native code",
                "fork sleep": "os.system refused", "20 GiB": "MemoryError", "socket": "network access is not allowed",
                "raw token": "outside the data roots", "raw socket": "network access is not allowed",
                "udp sendmsg": "network access is not allowed", "interfaces": "lo",
                "server environ": f"PermissionError {errno.EACCES}", "root-only data": f"PermissionError {errno.EACCES}"}
    parts = dict(p.split(": ", 1) for p in message.split("REPORT ", 1)[1].split("; ")[1:])
    for attack, reason in expected.items():
        assert reason in parts[attack], (attack, parts[attack])
    assert parts["interfaces"] == "lo", parts["interfaces"]  # its own network namespace: nothing but loopback
    assert any("user hopper-sandbox" in n and "network namespace" in n and "filesystem view" in n
               for n in validation["notes"]), validation["notes"]


def test_a_layer_that_cannot_apply_is_reported_off_with_its_reason(tmp_path, sandbox_uid):
    """No view asked for, and a data dir the sandbox user cannot read (0700 root's): the user switch is left
    off rather than breaking the worker, and the description says why each layer is off."""
    private = tmp_path / "private-data"
    private.mkdir(mode=0o700)
    plan = Plan(user=SANDBOX_USER, netns=False, view=False, readable=(str(private),))
    code = ("import json, os, sys\nfrom hopper.mop_scheduler.worker.confine import Plan, enter\n"
            "layers = enter(Plan.from_json(sys.argv[1]))\nprint(json.dumps([os.getuid(), layers.describe()]))\n")
    result = run_contained([sys.executable, "-c", code, plan.to_json()], timeout=60, limits=Limits(), network=True)
    assert result.returncode == 0, result.stderr
    uid, described = json.loads(result.stdout.strip().splitlines()[-1])
    assert uid == 0
    # The first path it cannot read: the private dir, or before it the interpreter where that lives under a
    # 0700 home (this machine's pyenv under /root; the view is what makes it reachable).
    blocked = described.split(f"no user switch ({SANDBOX_USER} cannot read ", 1)[1].split("), ", 1)[0]
    assert blocked == str(private) or blocked == sys.executable, described
    assert described.endswith("), no network namespace (the process needs the network (checkpoints at a URL)), "
                              "no filesystem view (off), rlimits, audit hook"), described

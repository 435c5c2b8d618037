"""User code is contained: its own process group killed as a whole, rlimits on by default, no network, no
process starting or native code after Hopper's imports, and validation off the web server's request threads."""

from __future__ import annotations

import socket
import sys
import threading
import time

import psutil
import pytest
import requests

from hopper.app import open_services
from hopper.mop_scheduler.worker.validate import Limits, run_contained, validate_script

pytestmark = pytest.mark.slow


def _procs_with(marker: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(p.info["cmdline"] or []):
                out.append(p)
        except psutil.Error:
            continue
    return out


def _script(tmp_path, body: str, name: str = "s.py"):
    path = tmp_path / name
    path.write_text(body)
    return path


def test_a_timed_out_child_dies_with_everything_it_started(tmp_path):
    """The bottom layer alone: a shell that backgrounds a sleep and hangs is killed as a process group."""
    started = time.monotonic()
    result = run_contained(["sh", "-c", "sleep 317 & sleep 318"], timeout=1.5, limits=Limits())
    assert result.timed_out and time.monotonic() - started < 30
    deadline = time.monotonic() + 10
    while _procs_with("sleep 317") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _procs_with("sleep 317"), "the backgrounded sleep survived its killed parent"


def test_background_children_of_a_finished_child_are_killed_too(tmp_path):
    result = run_contained(["sh", "-c", "sleep 319 & echo done"], timeout=30, limits=Limits())
    assert not result.timed_out and result.stdout.strip() == "done"
    deadline = time.monotonic() + 10
    while _procs_with("sleep 319") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _procs_with("sleep 319")


def test_a_script_that_forks_a_sleep_is_rejected_and_nothing_survives(tmp_path):
    path = _script(tmp_path, "import os\nos.system('sleep 321 &')\nimport keras\n"
                             "def build_model(c):\n  return keras.Sequential([keras.Input(c['input_shape'])])\n")
    check = validate_script(path, timeout=60)
    assert not check.ok
    assert "may not start processes" in check.message and "os.system" in check.message, check.message
    assert not _procs_with("sleep 321")


def test_a_20_gib_allocation_is_refused_by_the_default_memory_limit(tmp_path):
    path = _script(tmp_path, "def build_model(c):\n  hog = bytearray(20 * 2**30)\n  return hog\n")
    started = time.monotonic()
    check = validate_script(path, timeout=60)  # the defaults: 4096 MB of address space
    assert not check.ok and "MemoryError" in check.message, check.message
    assert time.monotonic() - started < 60


def test_ctypes_cannot_load_libc_in_user_code(tmp_path):
    path = _script(tmp_path, "import ctypes\nlibc = ctypes.CDLL('libc.so.6')\n"
                             "def build_model(c):\n  return None\n")
    check = validate_script(path, timeout=60)
    assert not check.ok and "load native code" in check.message, check.message


def test_the_child_has_no_network_even_to_loopback(tmp_path):
    """In the child's own network namespace (unshare --net, as root) nothing is reachable, not even a port on
    this machine's loopback that a server listens on."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        code = (f"import socket\ntry:\n  socket.create_connection(('127.0.0.1', {port}), timeout=3)\n  print('connected')\n"
                "except OSError as e:\n  print('refused', e.errno)\n")
        result = run_contained([sys.executable, "-c", code], timeout=30, limits=Limits())
    assert result.stdout.startswith("refused"), result.stdout + result.stderr


def test_cpu_and_file_size_limits_name_the_reason(tmp_path):
    looping = run_contained([sys.executable, "-c", "while True: pass"], timeout=30,
                            limits=Limits(cpu_seconds=1))
    assert looping.returncode == -24, looping  # SIGXCPU
    # Its own temp dir: the one place (with its private copy of the script) that the child may write.
    path = _script(tmp_path, "import os, tempfile\ndef build_model(c):\n"
                             "  open(os.path.join(tempfile.gettempdir(), 'big'), 'wb').write(b'x' * (3 * 2**20))\n")
    check = validate_script(path, timeout=60, file_mb=1)
    assert not check.ok and ("SIGXFSZ" in check.message or "File too large" in check.message), check.message


def test_ten_looping_uploads_do_not_slow_the_api(tmp_path, settings, digits):
    """Validation runs on the bounded pool: uploads answer 202 or 429 at once, reads stay fast."""
    from waitress import create_server

    from hopper.rest import create_app

    tuned = settings.with_overrides(script_timeout=6.0, script_validators=2, script_queue=3)
    services = open_services(tuned)
    app = create_app(services, token="t" * 20, secret_key="s" * 32)
    server = create_server(app, host="127.0.0.1", port=0, threads=8)
    port = server.effective_port
    threading.Thread(target=server.run, daemon=True).start()
    base, headers = f"http://127.0.0.1:{port}/api/v1", {"Authorization": "Bearer " + "t" * 20}
    try:
        answers: list[requests.Response] = []

        def upload(i: int) -> None:
            answers.append(requests.post(f"{base}/scripts", headers=headers, timeout=30, json={
                "name": f"loop{i}.py", "content": f"# {i}\nwhile True:\n    pass\n"}))

        uploads = [threading.Thread(target=upload, args=(i,)) for i in range(10)]
        for t in uploads:
            t.start()
        for t in uploads:
            t.join(30)
        codes = sorted(r.status_code for r in answers)
        assert len(codes) == 10 and set(codes) <= {202, 429} and 202 in codes and 429 in codes, codes
        busy = [r for r in answers if r.status_code == 429]
        assert all(int(r.headers["Retry-After"]) >= 1 and r.json()["error"]["code"] == "too_busy" for r in busy)
        latencies = []
        for _ in range(20):
            started = time.monotonic()
            assert requests.get(f"{base}/workloads", headers=headers, timeout=30).status_code == 200
            latencies.append(time.monotonic() - started)
        print(f"GET /workloads while validating: max {max(latencies) * 1000:.0f} ms, "
              f"median {sorted(latencies)[10] * 1000:.0f} ms")
        assert max(latencies) < 1.0, latencies
        # Every accepted upload ends rejected (timed out, process group killed); none stays pending.
        ids = [r.json()["id"] for r in answers if r.status_code == 202]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = [requests.get(f"{base}/scripts/{i}", headers=headers, timeout=30).json()["validation"]
                      for i in ids]
            if all(s["state"] != "pending" for s in states):
                break
            time.sleep(0.2)
        assert all(s["state"] == "rejected" and "within 6 s" in s["message"] for s in states), states
    finally:
        server.close()
        services.store.dispose()


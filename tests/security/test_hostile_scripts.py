"""Uploaded scripts that misbehave while training: each config fails alone, with the reason, within
its limits, while the other configs and the web server keep going; and what the OS layers leave a training
worker (run as root, as CI does, after the install step created hopper-sandbox)."""

import errno
import pwd
import socket
import threading

import pytest

from hopper.rest import create_app
from tests.support.running import RunningScheduler

pytestmark = pytest.mark.slow

HOSTILE = '''
import keras

def build_model(config):
    mode = config.get("mode", "ok")
    if mode == "raise_build":
        raise RuntimeError("boom in build")
    if mode == "loop":
        while True:
            pass
    if mode == "memory":
        hog = []
        while True:
            hog.append(bytearray(50 * 2**20))
            hog[-1][::4096] = b"x" * len(hog[-1][::4096])
    if mode == "read_secret":
        open("/etc/shadow").read()
    if mode == "read_outside_roots":
        open(config["outside"]).read()
    if mode == "socket":
        import socket
        socket.create_connection(("127.0.0.1", int(config["port"])), timeout=2)
    if mode == "os_probe":  # what the OS layers under the audit hook leave a training worker
        import os
        report = [f"uid={os.getuid()}"]
        for name, action in (("server environ", lambda: open(f"/proc/{os.getppid()}/environ", "rb").read()),
                             ("stat store", lambda: os.stat(config["store"])),  # os.stat is not audited
                             ("write data root", lambda: open(config["data_root"] + "/planted", "w"))):
            try:
                action()
                report.append(f"{name}: DONE")
            except OSError as exc:
                report.append(f"{name}: errno {exc.errno}")
        interfaces = [line.split(":")[0].strip() for line in open("/proc/self/net/dev").read().splitlines()[2:]]
        raise RuntimeError("REPORT " + "; ".join([*report, "interfaces: " + ",".join(interfaces)]))
    model = keras.Sequential([keras.Input(config["input_shape"]), keras.layers.Flatten(),
                              keras.layers.Dense(config["num_classes"], activation="softmax")])
    def exploding_loss(y_true, y_pred):
        raise ValueError("boom in fit")
    loss = exploding_loss if mode == "raise_fit" else "sparse_categorical_crossentropy"
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    return model
'''

EXPECTED = {
    "raise_build": "boom in build",
    "raise_fit": "boom in fit",
    # and where it hung: the worker's stack, asked for before it was killed
    "loop": "exceeded the 20 s limit; it was at build_model (",
    "memory": "MB memory limit",
    "read_secret": "may not open /etc/shadow",
    "read_outside_roots": "outside the data roots",
    "socket": "network access is not allowed",
}


def test_each_hostile_config_fails_alone(tmp_path, digits, settings):
    from dataclasses import replace

    from hopper.app import open_services

    services = open_services(replace(settings, sub_epoch_timeout=20, worker_memory_mb=1500))
    secret = tmp_path / "not-a-data-root.txt"
    secret.write_text("private")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    script = services.upload_script("hostile.py", HOSTILE, dataset="digits")
    assert script.valid, script.validation
    workload = services.launch_workload({"name": "hostile", "script": script.id, "dataset": "digits",
                                         "procedure": "manual", "max_epochs": 2})
    store = settings.home / "hopper.db"
    ids = {mode: services.add_config(workload.id, {"mode": mode, "outside": str(secret),
                                                    "port": listener.getsockname()[1], "store": str(store),
                                                    "data_root": str(settings.data_roots[0])}).id
           for mode in ["ok", *EXPECTED, "os_probe"]}
    app = create_app(services, token="t", secret_key="s" * 32).test_client()
    with RunningScheduler(services) as running:
        running.wait_for(lambda: all(services.get_config(i).status in ("done", "failed") for i in ids.values()),
                         400, "every config to finish or fail")
        # the web layer answered throughout
        assert app.get("/api/v1/workloads", headers={"Authorization": "Bearer t"}).status_code == 200
    ok = services.get_config(ids["ok"])
    assert ok.status == "done" and ok.epochs_done == 2
    for mode, reason in EXPECTED.items():
        config = services.get_config(ids[mode])
        assert config.status == "failed", (mode, config.status)
        assert reason in config.error, (mode, config.error)
    # The worker ran as the sandbox user in its own network namespace and filesystem view (as root, which CI is).
    probe = services.get_config(ids["os_probe"])
    assert probe.status == "failed" and "REPORT" in probe.error, probe.error
    parts = dict(p.split(": ", 1) if ": " in p else p.split("=", 1)
                 for p in probe.error.split("REPORT ", 1)[1].split("; "))
    assert parts["uid"] == str(pwd.getpwnam("hopper-sandbox").pw_uid) != "0", parts
    assert parts["server environ"] == f"errno {errno.EACCES}", parts  # /proc is allowed by the hook
    assert parts["stat store"] == f"errno {errno.ENOENT}", parts  # not in the view
    assert parts["write data root"] == f"errno {errno.EROFS}", parts
    assert parts["interfaces"] == "lo", parts
    listener.settimeout(0.1)
    with pytest.raises(TimeoutError):
        listener.accept()  # nobody got through
    listener.close()
    assert threading.active_count() < 50

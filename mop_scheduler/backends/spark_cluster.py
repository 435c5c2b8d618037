"""A Spark standalone cluster (master + workers) on this machine, from the ``spark-class`` pip's pyspark ships.

Tests and benchmarks use it to run the Spark backend against real JVM daemons on loopback; it is
also the quickest way to try ``--backend spark`` without a cluster (``hopper spark-cluster``).
Production clusters are started by their own tooling (see ``docker-compose.yml``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _wait_port(host: str, port: int, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the Spark daemon exited with code {proc.returncode}; see {log}:\n{_tail(log)}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"the Spark daemon did not open {host}:{port} within {timeout:g} s; see {log}:\n{_tail(log)}")


def _terminate_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started the cluster dies (no orphaned JVMs).

    ``spark-class`` ends in ``exec java``, and the death signal survives exec.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class StandaloneCluster:
    """A master and ``n_workers`` workers (``cores`` and ``memory`` each) bound to ``host``.

    ``workers[i]`` is the worker JVM's process, so a test can kill one and ``restart_worker`` it.
    """

    n_workers: int = 2
    cores: int = 1
    memory: str = "2g"
    host: str = "127.0.0.1"
    workdir: Path | None = None
    master_port: int = 0
    master: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)
    _own_workdir: bool = False

    @property
    def url(self) -> str:
        return f"spark://{self.host}:{self.master_port}"

    def _daemon(self, name: str, role: str, *args: str) -> tuple[subprocess.Popen, Path]:
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise RuntimeError("Java is needed for Spark; install a JRE 17 (scripts/install-test-deps.sh does)")
        command, env = daemon_command(role, args)
        env.update({"PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": self.host, "SPARK_LOG_DIR": str(self.workdir)})
        log = self.workdir / f"{name}.log"
        proc = subprocess.Popen(command, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_terminate_with_parent)
        return proc, log

    def start(self, timeout: float = 90.0) -> StandaloneCluster:
        if self.workdir is None:
            self.workdir, self._own_workdir = Path(tempfile.mkdtemp(prefix="hopper-spark-")), True
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.master_port = self.master_port or _free_port(self.host)
        ui_port = _free_port(self.host)
        self.master, log = self._daemon("master", "master", "--host", self.host,
                                        "--port", str(self.master_port), "--webui-port", str(ui_port))
        _wait_port(self.host, self.master_port, self.master, log, timeout)
        for index in range(self.n_workers):
            self.workers.append(self._start_worker(index, timeout))
        return self

    def _start_worker(self, index: int, timeout: float) -> subprocess.Popen:
        port = _free_port(self.host)
        work = self.workdir / f"worker-{index}"
        work.mkdir(exist_ok=True)
        proc, log = self._daemon(f"worker-{index}", "worker", "--host", self.host,
                                 "--port", str(port), "--webui-port", str(_free_port(self.host)),
                                 "--cores", str(self.cores), "--memory", self.memory, "--work-dir", str(work),
                                 self.url)
        _wait_port(self.host, port, proc, log, timeout)
        return proc

    def kill_worker(self, index: int) -> None:
        """SIGKILL a worker JVM and the executor it launched (as a crashed machine would lose both)."""
        proc = self.workers[index]
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)

    def restart_worker(self, index: int, timeout: float = 90.0) -> None:
        self.workers[index] = self._start_worker(index, timeout)

    def stop(self) -> None:
        for proc in [*self.workers, self.master]:
            if proc is None or proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for proc in [*self.workers, self.master]:
            if proc is None:
                continue
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.workers.clear()
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> StandaloneCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def daemon_command(role: str, spark_args: tuple[str, ...] | list[str]) -> tuple[list[str], dict[str, str]]:
    """The ``spark-class`` command line and environment of a foreground master or worker daemon."""
    classes = {"master": "org.apache.spark.deploy.master.Master", "worker": "org.apache.spark.deploy.worker.Worker"}
    env = dict(os.environ)
    env.update({"SPARK_HOME": str(spark_home()), "SPARK_NO_DAEMONIZE": "1"})
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    return [str(spark_home() / "bin" / "spark-class"), classes[role], *spark_args], env

"""A throw-away PostgreSQL server from Debian's binaries, on a free loopback port."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_pg_bin() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


@dataclass
class PostgresServer:
    datadir: Path
    port: int
    bin_dir: Path
    run_as: str | None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _cmd(self, *args: str) -> list[str]:
        return (["runuser", "-u", self.run_as, "--"] if self.run_as else []) + list(args)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def pause(self) -> None:
        """Stop the server but keep its data (to simulate an outage)."""
        subprocess.run(self._cmd(str(self.bin_dir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "stop"),
                       check=True, capture_output=True, timeout=60)

    def resume(self) -> None:
        root = self.datadir.parent
        opts = f"-h 127.0.0.1 -p {self.port} -k {root} -c fsync=off -c full_page_writes=off"
        subprocess.run(self._cmd(str(self.bin_dir / "pg_ctl"), "-D", str(self.datadir), "-o", opts, "-l",
                                 str(root / "log"), "-w", "start"), check=True, capture_output=True, timeout=120)

    def stop(self) -> None:
        subprocess.run(self._cmd(str(self.bin_dir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop"),
                       capture_output=True, timeout=60)
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """initdb into a temp dir (as the postgres user when running as root) and start on loopback."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL server binaries not found: run `make test-deps` (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="hopper-pg-"))
    datadir = root / "data"
    run_as = "postgres" if os.geteuid() == 0 else None
    if run_as:
        shutil.chown(root, user=run_as)
        os.chmod(root, 0o700)
    server = PostgresServer(datadir, free_port(), bin_dir, run_as)
    subprocess.run(server._cmd(str(bin_dir / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust",
                               "-E", "UTF8", "--no-sync"), check=True, capture_output=True, timeout=120)
    opts = f"-h 127.0.0.1 -p {server.port} -k {root} -c fsync=off -c full_page_writes=off"
    subprocess.run(server._cmd(str(bin_dir / "pg_ctl"), "-D", str(datadir), "-o", opts, "-l",
                               str(root / "log"), "-w", "start"), check=True, capture_output=True, timeout=120)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", server.port)) == 0:
                return server
        time.sleep(0.2)
    raise RuntimeError(f"PostgreSQL did not start; see {root / 'log'}")

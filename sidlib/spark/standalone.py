"""A real Spark standalone cluster on this machine: one master and N workers, each its own JVM, bound to
127.0.0.1, started from the installed pyspark's ``bin/spark-class``.

Used by the cluster tests and the engine benchmark, and handy for trying ``spark-submit`` before a real
cluster: ``with StandaloneCluster(workers=2) as cluster: subprocess.run(cluster.submit_command(...))``.
Everything it starts is stopped on exit (also when the body raised), and every wait is bounded.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from sidlib.errors import SidlibError

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


class ClusterError(SidlibError):
    """The local standalone cluster did not come up (no Java, a port taken, a worker that never registered)."""


def spark_home() -> Path:
    """The installed pyspark package directory: it ships ``bin/spark-class`` and the jars."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def python_environment() -> dict[str, str]:
    """Environment for the cluster's JVMs and for ``spark-submit``: loopback only, and the driver's and
    executors' Python is this interpreter (so the same venv, with sidlib installed)."""
    return {**os.environ, "SPARK_HOME": str(spark_home()), "SPARK_LOCAL_IP": LOOPBACK,
            "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}


@dataclass
class StandaloneCluster:
    """``workers`` one-core workers with ``worker_memory`` each, logs and work dirs under ``work_dir``."""

    work_dir: Path
    workers: int = 2
    worker_cores: int = 1
    worker_memory: str = "2g"
    start_timeout_s: float = 90.0
    master_port: int = field(default_factory=free_port)
    master_ui_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def master_url(self) -> str:
        return f"spark://{LOOPBACK}:{self.master_port}"

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "StandaloneCluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._launch("master", ["org.apache.spark.deploy.master.Master", "--host", LOOPBACK,
                                "--port", str(self.master_port), "--webui-port", str(self.master_ui_port)])
        self._wait(lambda: self.master_state() is not None, "the master to answer")
        for i in range(self.workers):
            self.start_worker(f"worker{i}")
        self._wait(lambda: self.alive_workers() >= self.workers, f"{self.workers} workers to register")
        log.info("standalone cluster %s up with %d workers", self.master_url, self.workers)

    def start_worker(self, name: str) -> None:
        work = self.work_dir / name
        work.mkdir(parents=True, exist_ok=True)
        self._launch(name, ["org.apache.spark.deploy.worker.Worker", self.master_url, "--host", LOOPBACK,
                            "--cores", str(self.worker_cores), "--memory", self.worker_memory,
                            "--work-dir", str(work), "--webui-port", str(free_port())])

    def stop(self) -> None:
        """Stop every JVM this cluster started, workers (and so their executors) first."""
        for name in sorted(self.processes, key=lambda n: n == "master"):
            self._terminate(self.processes.pop(name))

    def kill_worker(self, name: str) -> int:
        """SIGKILL one worker JVM and the executors it launched, as a machine loss would: returns the PID."""
        proc = self.processes.pop(name)
        for child in _children(proc.pid):
            _signal(child, signal.SIGKILL)
        proc.kill()
        proc.wait(timeout=30)
        return proc.pid

    # ------------------------------------------------------------------ state
    def master_state(self) -> dict | None:
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{self.master_ui_port}/json/", timeout=2) as reply:
                return json.load(reply)
        except OSError:
            return None

    def alive_workers(self) -> int:
        state = self.master_state() or {}
        return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")

    def submit_command(self, script: str | Path, args: Sequence[str] = (), conf: dict[str, str] | None = None) -> list[str]:
        """``spark-submit`` of a Python job to this cluster, driver on loopback."""
        confs = {"spark.driver.host": LOOPBACK, "spark.driver.bindAddress": LOOPBACK,
                 "spark.executor.memory": "1g", **(conf or {})}
        command = [str(spark_home() / "bin" / "spark-submit"), "--master", self.master_url]
        for key, value in confs.items():
            command += ["--conf", f"{key}={value}"]
        return command + [str(script), *args]

    def start_submit(self, script: str | Path, args: Sequence[str] = (), conf: dict[str, str] | None = None, *,
                     env: dict[str, str] | None = None, cwd: str | Path | None = None) -> subprocess.Popen[str]:
        """Start one ``spark-submit`` in the background, output captured (for jobs run at once)."""
        return subprocess.Popen(self.submit_command(script, args, conf), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**python_environment(), **(env or {})},
                                cwd=cwd, stdin=subprocess.DEVNULL)

    def submit(self, script: str | Path, args: Sequence[str] = (), conf: dict[str, str] | None = None, *,
               timeout_s: float = 600, env: dict[str, str] | None = None, cwd: str | Path | None = None,
               ) -> subprocess.CompletedProcess[str]:
        """Run one ``spark-submit`` to completion (killed after ``timeout_s``)."""
        return finish(self.start_submit(script, args, conf, env=env, cwd=cwd), timeout_s)

    # ------------------------------------------------------------------ internals
    def _launch(self, name: str, args: list[str]) -> None:
        log_file = open(self.work_dir / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(
            [str(spark_home() / "bin" / "spark-class"), *args], env=python_environment(), stdout=log_file,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log_file.close()

    def _wait(self, ready, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise ClusterError(f"{name} exited with {proc.returncode} while waiting for {what}; "
                                       f"see {self.work_dir / (name + '.log')}")
            if ready():
                return
            time.sleep(0.5)
        raise ClusterError(f"timed out after {self.start_timeout_s:.0f}s waiting for {what}; logs in {self.work_dir}")

    @staticmethod
    def _terminate(proc: subprocess.Popen) -> None:
        children = _children(proc.pid)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)
        for child in children:  # executors a worker launched, if they outlived it
            _signal(child, signal.SIGKILL)


def finish(proc: subprocess.Popen[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Wait for a started ``spark-submit`` (killed after ``timeout_s``, which then raises)."""
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _children(pid: int) -> list[int]:
    """Descendant PIDs of ``pid`` (from /proc), deepest last."""
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            kids = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            kids = []
        found += [int(k) for k in kids]
        frontier += [int(k) for k in kids]
    return found


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass

"""A live `almanac serve` for the serving benchmark: a child process on a free loopback port.

    with LiveServer(home, log_path, extra_env={"ALMANAC_CHAT__MODEL": folder}) as server:
        httpx.post(server.url + "/v1/search", json={"query": "heapq"})

Start: `almanac serve --host 127.0.0.1 --port P` with ALMANAC_HOME set, then poll /readyz until 200 (the
warm-up loads the models and the default collection's snapshot, which takes minutes at 200k chunks). Stop:
SIGTERM, which drains in-flight requests, then wait for the exit status. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

REPO = Path(__file__).resolve().parent.parent
ALMANAC = Path(sys.executable).with_name("almanac")
HOST = "127.0.0.1"


class ServerError(RuntimeError):
    """The server did not come up, or did not stop cleanly; the message points at its log."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without ALMANAC_* settings, plus the home and `extra`, offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALMANAC_")}
    env.update(
        ALMANAC_HOME=str(home.resolve()), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **(extra or {})
    )
    return env


class LiveServer:
    """`almanac serve` in a child process, ready when the context is entered, stopped on exit."""

    def __init__(
        self, home: Path, log_path: Path, extra_env: dict[str, str] | None = None, ready_s: float = 1200
    ) -> None:
        self.home, self.log_path, self.ready_s = home, log_path, ready_s
        self.env = server_env(home, extra_env)
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_seconds = 0.0
        self.exit_code: int | None = None

    @property
    def pid(self) -> int:
        """The server's process id (for py-spy)."""
        assert self.process is not None
        return self.process.pid

    def spawn(self) -> float:
        """Start `almanac serve` with its output appended to the log; returns perf_counter() at the start."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [str(ALMANAC), "serve", "--host", HOST, "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            log.write(f"\n# {' '.join(command)}  ALMANAC_HOME={self.home}\n".encode())
            log.flush()
            started = time.perf_counter()
            self.process = subprocess.Popen(command, cwd=REPO, env=self.env, stdout=log, stderr=log)
        return started

    def start(self) -> None:
        """Spawn the server and wait until /readyz says ready (or the process dies, or time runs out)."""
        started = self.spawn()
        while time.perf_counter() - started < self.ready_s:
            if self.process.poll() is not None:
                raise ServerError(f"the server exited with {self.process.returncode}; see {self.log_path}")
            if self._ready():
                self.ready_seconds = time.perf_counter() - started
                return
            time.sleep(0.5)
        self.stop()
        raise ServerError(f"the server was not ready after {self.ready_s:.0f} s; see {self.log_path}")

    def _ready(self) -> bool:
        try:
            response = httpx.get(self.url + "/readyz", timeout=5)
        except httpx.TransportError:
            return False
        if response.status_code == 200:
            return True
        if response.json().get("status") == "failed":
            raise ServerError(f"the server's warm-up failed: {response.text}; see {self.log_path}")
        return False

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM (the server drains), then wait; SIGKILL only if it hangs. Returns the exit status."""
        process = self.process
        if process is None or process.poll() is not None:
            self.exit_code = None if process is None else process.returncode
            return self.exit_code or 0
        process.send_signal(signal.SIGTERM)
        try:
            self.exit_code = process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            self.exit_code = process.wait()
        return self.exit_code

    def __enter__(self) -> LiveServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

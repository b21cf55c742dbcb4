"""Real servers on loopback for tests: this service, and a real Label Studio.

Each runs as a child process on a free 127.0.0.1 port with its own data folder, its
output in a log file the failing test can show, and is stopped by its own pid.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """A child process serving HTTP on ``127.0.0.1:port``."""

    def __init__(self, command: list[str], env: dict[str, str], port: int, log_path: Path) -> None:
        self.command = command
        self.env = env
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str, timeout: float) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command[0]} exited early:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + ready_path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{self.command[0]} not ready after {timeout}s:\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def rss_mb(self) -> float:
        """Resident memory of the server's main process, in MB (0 when it is gone)."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except (AttributeError, OSError):
            return 0.0
        line = next((row for row in status.splitlines() if row.startswith("VmRSS:")), "")
        return int(line.split()[1]) / 1024 if line else 0.0

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def service_process(data_dir: Path, **env: str) -> ServerProcess:
    """This service, run as ``python -m label_studio_watsonx serve``."""
    port = free_port()
    environment = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("WATSONX_", "LABEL_STUDIO_", "BASIC_AUTH_"))
    }  # fmt: skip
    environment.update({"HOST": "127.0.0.1", "PORT": str(port), "DATA_DIR": str(data_dir)})
    environment.update(env)
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "label_studio_watsonx", "serve"]
    return ServerProcess(command, environment, port, data_dir / "service.log")


def label_studio_process(executable: str, data_dir: Path) -> tuple[ServerProcess, str]:
    """A stock Label Studio with a known legacy API token; returns it and the token."""
    port = free_port()
    token = secrets.token_hex(20)
    data_dir.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ)
    environment.update(
        {
            "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
            "LABEL_STUDIO_USERNAME": "e2e@example.com",
            "LABEL_STUDIO_PASSWORD": secrets.token_hex(12),
            "LABEL_STUDIO_USER_TOKEN": token,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "SSRF_PROTECTION_ENABLED": "false",
            "ML_BLOCK_LOCAL_IP": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "COLLECT_ANALYTICS": "false",
        }
    )
    command = [
        executable, "start", "--no-browser", "--internal-host", "127.0.0.1",
        "--port", str(port), "--data-dir", str(data_dir),
    ]  # fmt: skip
    return ServerProcess(command, environment, port, data_dir / "label-studio.log"), token

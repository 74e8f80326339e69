"""Run the dashboard in a background thread (``vigil demo``, integration and browser tests)."""

from __future__ import annotations

import threading
import time

import httpx
import uvicorn
from fastapi import FastAPI

from vigil.infra.ports import free_port


class ServerThread:
    """uvicorn on loopback in a daemon thread; ``start()`` returns once /healthz answers."""

    def __init__(self, app: FastAPI, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port or free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=self.port, log_config=None, access_log=False, lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, name="vigil-web", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"dashboard did not start on {self.url}")

    def wait_ready(self, timeout_s: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                return True
            time.sleep(0.25)
        return False

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

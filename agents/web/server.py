"""Run the dashboard in a background thread (``vigil demo``, integration and browser tests)."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import uvicorn
from fastapi import FastAPI

from vigil.infra.ports import free_port


def http_status(url: str, timeout_s: float) -> int | None:
    """The HTTP status of GET ``url`` (loopback), None when nothing answers. The standard library's
    client: serving installs no HTTP client package (httpx is the tests' only)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - loopback http
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except (urllib.error.URLError, OSError):
        return None


class ServerThread:
    """uvicorn on loopback in a daemon thread; ``start()`` returns once /healthz answers."""

    def __init__(self, app: FastAPI, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port or free_port()
        self.server = uvicorn.Server(
            # no proxy in front of the demo's or the tests' loopback server: X-Forwarded-For is never
            # believed (uvicorn's default believes it from loopback; cli/serve.py ``proxy_options``)
            uvicorn.Config(
                app,
                host=host,
                port=self.port,
                log_config=None,
                access_log=False,
                lifespan="on",
                proxy_headers=False,
            )
        )
        self.thread = threading.Thread(target=self.server.run, name="vigil-web", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if http_status(f"{self.url}/healthz", 1) == 200:
                return self
            time.sleep(0.1)
        raise RuntimeError(f"dashboard did not start on {self.url}")

    def wait_ready(self, timeout_s: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if http_status(f"{self.url}/readyz", 5) == 200:
                return True
            time.sleep(0.25)
        return False

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

"""A real uvicorn serving `create_app(settings)` in a thread, on a loopback port of its own: the
end-to-end, client-compatibility and playground tests talk to it over real HTTP."""

from __future__ import annotations

import re
import socket
import threading
import time

import httpx
import uvicorn

from server import Settings, create_app


class LiveServer:
    """The app under uvicorn on a socket bound before start (port 0: no race for a free port);
    ready once `/ready` answers 200, or raises with the app's startup error."""

    def __init__(self, settings: Settings):
        self.app = create_app(settings)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False,
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server never became ready: {self.app.state.startup_error}")

    @property
    def worker(self):
        return self.app.state.serving.worker

    def metric(self, name: str) -> float:
        """A sample of the server's /metrics, the public view of what the engine is doing."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)

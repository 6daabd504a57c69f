"""The API in a subprocess for the benches: ``prodsearch serve`` on a free local port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time

import httpx

from prodsearch.config import Settings


def child_env(settings: Settings, **overrides: str) -> dict[str, str]:
    """The environment of a process a benchmark starts: this one's, with every setting
    as the benchmark was given it (:meth:`Settings.as_env`), then ``overrides``."""
    env = dict(os.environ)
    for key, value in {**settings.as_env(), **overrides}.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalServer:
    """`prodsearch serve` in a subprocess on a free port, with the benchmark's settings
    (and ``overrides``); waits for ``/health`` 200 and always stops the server."""

    def __init__(self, settings: Settings, **overrides: str) -> None:
        self.env = child_env(settings, **overrides)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__)

    def __enter__(self) -> LocalServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "prodsearch", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,  # a file, not a pipe: a pipe nobody reads can fill and block
        )
        try:
            self._wait_healthy()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_healthy(self, timeout: float = 180) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"server exited: {self.log.read().decode()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"server did not answer /health with 200 within {timeout:.0f} s")

    def __exit__(self, *_exc: object) -> None:
        if self.proc is None:
            self.log.close()
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

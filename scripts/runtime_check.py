"""The runtime-only install, checked (``make runtime-check``, part of ``make test``).

Run by the runtime virtualenv's Python (no PyTorch, transformers or sentence-transformers
installed), with ``PRODSEARCH_MODEL_CACHE`` pointing at a cache the full install prepared
(``prodsearch model export``): a small catalog is embedded, ``/search/hybrid`` served and
answered, a new product synced by ``watch --once`` and found. Exits non-zero naming the
step that failed.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
CLI = [str(BIN / "prodsearch")]


def step(what: str, *args: str) -> str:
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        sys.exit(f"runtime check: `prodsearch {' '.join(args)}` failed ({what}):\n{done.stderr}")
    return done.stdout


def refused(what: str, extra: str, *args: str, env: dict[str, str] | None = None) -> None:
    """A command that needs a missing extra says so in one line, naming the extra."""
    done = subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    lines = done.stderr.strip().splitlines()
    if done.returncode == 0 or len(lines) != 1 or extra not in lines[0]:
        sys.exit(f"runtime check: {what} should fail in one line naming {extra}: {done.stderr}")


def main() -> None:
    for module in ("torch", "transformers", "sentence_transformers"):
        if importlib.util.find_spec(module) is not None:
            sys.exit(f"runtime check: {module} is importable in the runtime install")
    if not os.environ.get("PRODSEARCH_MODEL_CACHE"):
        sys.exit("runtime check: set PRODSEARCH_MODEL_CACHE to a prepared model cache")
    home = tempfile.mkdtemp(prefix="prodsearch-runtime-")
    os.environ["PRODSEARCH_HOME"] = home
    os.environ.pop("DATABASE_URL", None)
    started = time.perf_counter()
    try:
        step("schema", "init")
        step("catalog", "catalog", "generate", "--products", "400")
        empty = tempfile.mkdtemp(prefix="prodsearch-no-cache-")
        refused(
            "embed without a prepared cache",
            "prodsearch[export]",
            "embed",
            "--quiet",
            env={"PRODSEARCH_MODEL_CACHE": empty},
        )
        refused(
            "the original-method baseline",
            "prodsearch[bench]",
            "bench",
            "encode",
            "--texts",
            "64",
            "--rounds",
            "1",
        )
        step("embed", "embed", "--quiet")
        step("capture", "watch", "install")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen(
            [*CLI, "serve", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(url + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            else:
                sys.exit("runtime check: the server did not answer /health")

            def hybrid(query: str) -> list[dict[str, object]]:
                res = httpx.post(url + "/search/hybrid", json={"query": query}, timeout=30)
                if res.status_code != 200:
                    sys.exit(f"runtime check: /search/hybrid answered {res.status_code}")
                return list(res.json()["results"])

            if not hybrid("klocki hamulcowe"):
                sys.exit("runtime check: /search/hybrid found nothing")
            step(
                "a new product",
                "db",
                "psql",
                "-c",
                "INSERT INTO staging_marts.dim_product (product_id, name, price, in_stock)"
                " VALUES (990001, 'Quorvex 9000 wiper blade', 10, true)",
            )
            step("watch", "watch", "--once")
            if 990001 not in [r["product_id"] for r in hybrid("quorvex 9000 wiper")]:
                sys.exit("runtime check: the product watch synced is not found")
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        subprocess.run([*CLI, "db", "stop"], capture_output=True, timeout=120)
        subprocess.run(["rm", "-rf", home], check=False)
    took = time.perf_counter() - started
    print(f"runtime check: embed, /search/hybrid and watch --once without PyTorch ({took:.0f} s)")


if __name__ == "__main__":
    main()

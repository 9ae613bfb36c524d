"""maker: reliable long-horizon LLM work by maximal decomposition, voting and red flags.

The whole public API, in one screen::

    import maker
    from tasks import build_task
    from voting import AheadByK, Voting

    result = maker.run(build_task("hanoi", disks=10), model="sim/gpt-4.1-mini",
                       voting=Voting(rule=AheadByK(3)))

`run`/`arun` execute a task or a networkx DAG of steps (`DAG`, `llm_step`,
`python_step`); `RunSettings` says how (concurrency, seed), `Budget` how much
it may spend, `voting.Voting` how each step is decided. Every run writes a
trace, which `resume`, `replay` and `maker.analysis` read back.
"""

from __future__ import annotations

from maker import errors
from maker._budget import Budget
from maker._graph import DAG
from maker._oracles import SimOracle, sim_backend, sim_oracle
from maker._pricing import PRICES, Price, load_prices, price_of
from maker._recorder import Decision, Progress, Totals
from maker._replay import ReplayReport, areplay, replay
from maker._result import RunResult
from maker._resume import aresume, resume
from maker._runner import DEFAULT_MODEL, arun, run
from maker._settings import RunSettings
from maker._steps import LLMFunctionStep, PythonFunctionStep, llm_step, parse_last, python_step
from maker._version import __version__
from maker.backends import Backend, Completion, Request, open_backend

__all__ = [
    "DEFAULT_MODEL",
    "DAG",
    "Backend",
    "Budget",
    "Completion",
    "Decision",
    "LLMFunctionStep",
    "PRICES",
    "Price",
    "Progress",
    "PythonFunctionStep",
    "ReplayReport",
    "Request",
    "RunResult",
    "RunSettings",
    "SimOracle",
    "Totals",
    "__version__",
    "areplay",
    "aresume",
    "arun",
    "load_prices",
    "price_of",
    "errors",
    "llm_step",
    "open_backend",
    "parse_last",
    "python_step",
    "replay",
    "resume",
    "run",
    "sim_backend",
    "sim_oracle",
]

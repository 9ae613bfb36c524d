"""maker: reliable long-horizon LLM work by maximal decomposition, voting and red flags.

The whole public API, in one screen::

    import maker
    from maker.tasks import build_task
    from maker.voting import AheadByK, Voting

    result = maker.run(build_task("hanoi", disks=10), model="sim/gpt-4.1-mini",
                       voting=Voting(rule=AheadByK(3)))

`run`/`arun` execute a task or a networkx DAG of steps (`DAG`, `llm_step`,
`python_step`), or a problem the model decomposes itself (`recursive_plan`);
`RunSettings` says how (concurrency, steps at once, seed), `Budget` how much
the whole run may spend, `voting.Voting` how each step is decided. Given
`trace=PATH`, a run writes a trace, which `resume`, `replay` and
`maker.analysis` read back; a run that stops on a run error returns it in
`result.error`, and `result.raise_for_outcome()` raises it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from maker import errors

if TYPE_CHECKING:
    from maker._budget import Budget
    from maker._graph import DAG
    from maker._independent import IndependentSteps, independent_steps
    from maker._oracles import SimOracle, sim_backend, sim_oracle
    from maker._pricing import PRICES, Price, load_prices, price_of
    from maker._recorder import Decision, Progress, Totals
    from maker._recursive import (
        RecursiveDAG,
        RecursiveLimits,
        RecursiveProblem,
        RecursiveRole,
        atomic,
        decomposition_tree,
        recursive_plan,
        split,
    )
    from maker._replay import ReplayReport, areplay, replay
    from maker._result import RunResult
    from maker._resume import aresume, resume
    from maker._runner import DEFAULT_MODEL, arun, run
    from maker._settings import RunSettings
    from maker._sharded import ShardedResult, aresume_sharded, arun_sharded, resume_sharded, run_sharded
    from maker._steps import LLMFunctionStep, PythonFunctionStep, llm_step, parse_last, python_step
    from maker._version import __version__
    from maker.backends import Backend, Completion, Request, open_backend

# Public name -> defining module. Loaded on first use (PEP 562), so that
# `import maker.traces` or `maker.errors` does not load the whole runtime.
_LAZY: dict[str, str] = {
    "Budget": "maker._budget",
    "DAG": "maker._graph",
    "IndependentSteps": "maker._independent",
    "independent_steps": "maker._independent",
    "SimOracle": "maker._oracles",
    "sim_backend": "maker._oracles",
    "sim_oracle": "maker._oracles",
    "PRICES": "maker._pricing",
    "Price": "maker._pricing",
    "load_prices": "maker._pricing",
    "price_of": "maker._pricing",
    "Decision": "maker._recorder",
    "Progress": "maker._recorder",
    "Totals": "maker._recorder",
    "RecursiveDAG": "maker._recursive",
    "RecursiveLimits": "maker._recursive",
    "RecursiveProblem": "maker._recursive",
    "RecursiveRole": "maker._recursive",
    "atomic": "maker._recursive",
    "decomposition_tree": "maker._recursive",
    "recursive_plan": "maker._recursive",
    "split": "maker._recursive",
    "ReplayReport": "maker._replay",
    "areplay": "maker._replay",
    "replay": "maker._replay",
    "RunResult": "maker._result",
    "aresume": "maker._resume",
    "resume": "maker._resume",
    "DEFAULT_MODEL": "maker._runner",
    "arun": "maker._runner",
    "run": "maker._runner",
    "RunSettings": "maker._settings",
    "ShardedResult": "maker._sharded",
    "arun_sharded": "maker._sharded",
    "aresume_sharded": "maker._sharded",
    "run_sharded": "maker._sharded",
    "resume_sharded": "maker._sharded",
    "LLMFunctionStep": "maker._steps",
    "PythonFunctionStep": "maker._steps",
    "llm_step": "maker._steps",
    "parse_last": "maker._steps",
    "python_step": "maker._steps",
    "__version__": "maker._version",
    "Backend": "maker.backends",
    "Completion": "maker.backends",
    "Request": "maker.backends",
    "open_backend": "maker.backends",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'maker' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "DAG",
    "DEFAULT_MODEL",
    "PRICES",
    "Backend",
    "Budget",
    "Completion",
    "Decision",
    "IndependentSteps",
    "LLMFunctionStep",
    "Price",
    "Progress",
    "PythonFunctionStep",
    "RecursiveDAG",
    "RecursiveLimits",
    "RecursiveProblem",
    "RecursiveRole",
    "ReplayReport",
    "Request",
    "RunResult",
    "RunSettings",
    "ShardedResult",
    "SimOracle",
    "Totals",
    "__version__",
    "areplay",
    "aresume",
    "aresume_sharded",
    "arun",
    "arun_sharded",
    "atomic",
    "decomposition_tree",
    "errors",
    "independent_steps",
    "llm_step",
    "load_prices",
    "open_backend",
    "parse_last",
    "price_of",
    "python_step",
    "recursive_plan",
    "replay",
    "resume",
    "resume_sharded",
    "run",
    "run_sharded",
    "sim_backend",
    "sim_oracle",
    "split",
]

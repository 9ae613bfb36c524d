"""The public surface, pinned: each package's `__all__` is exactly the intended set.

A name that appears here is a promise to users. Adding or removing one should be
a deliberate change to this file in the same commit, not a side effect.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PUBLIC = {
    "maker": {
        "Backend",
        "Budget",
        "Completion",
        "DAG",
        "DEFAULT_MODEL",
        "Decision",
        "IndependentSteps",
        "LLMFunctionStep",
        "PRICES",
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
    },
    "maker.errors": {
        "BackendError",
        "BackendRejected",
        "BackendUnavailable",
        "BudgetExceeded",
        "ConfigError",
        "DecompositionError",
        "MakerError",
        "PlanError",
        "RunError",
        "ServerError",
        "FetchError",
        "StepFailed",
        "TraceError",
        "TraceMismatch",
        "UsageError",
        "VoteUndecided",
    },
    "maker.backends": {
        "Backend",
        "Completion",
        "Faults",
        "LocalServer",
        "LocalServerConfig",
        "ModelName",
        "OpenAIBackend",
        "OpenAIOptions",
        "PROFILES",
        "Request",
        "RetryEvent",
        "RetryPolicy",
        "SimBackend",
        "SimModel",
        "SimProfile",
        "SimServer",
        "SimServerConfig",
        "open_backend",
        "register_provider",
        "serve_sim",
    },
    "maker.analysis": {
        "ALPHA",
        "Analysis",
        "Bin",
        "Calibration",
        "Collisions",
        "Convergence",
        "Estimate",
        "Heterogeneity",
        "KRow",
        "Outlier",
        "Projection",
        "Proportion",
        "acalibrate",
        "analyze",
        "calibrate",
        "estimate",
        "majority_equivalent",
        "undecided",
        "wilson",
        "write_plots",
    },
    "maker.cli": {"build_parser", "main"},
    "maker.voting": {
        "NO_CANDIDATE",
        "AheadByK",
        "Candidates",
        "Collect",
        "Judged",
        "choice_parser",
        "decide_judged",
        "judge_prompt",
        "parse_choice",
        "DecisionRule",
        "Majority",
        "ParseError",
        "RedFlag",
        "Reply",
        "Single",
        "Tally",
        "Verdict",
        "Voting",
        "expected_samples",
        "expected_votes",
        "judge",
        "k_min",
        "length_flag",
        "p_step",
        "p_task",
        "rule_from_dict",
    },
    "maker.tasks": {
        "Chain",
        "Inputs",
        "LLMStep",
        "Messages",
        "NodeId",
        "Oracle",
        "Param",
        "PythonStep",
        "SampleableTask",
        "Task",
        "TaskInfo",
        "build_task",
        "oracles",
        "register",
        "task_info",
        "task_names",
    },
    "maker.traces": {
        "EVENT_FIELDS",
        "OUTCOMES",
        "SCHEMA_VERSION",
        "Revote",
        "StepRevote",
        "Trace",
        "TraceSummary",
        "TraceWriter",
        "is_manifest",
        "load_trace",
        "merge_shards",
        "read_events",
        "read_manifest",
        "repair_tail",
        "revote",
        "shard_traces",
        "summarize",
    },
}


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_all_is_exactly_the_intended_set(package: str) -> None:
    module = importlib.import_module(package)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), "a name is exported twice"
    added, removed = set(exported) - PUBLIC[package], PUBLIC[package] - set(exported)
    assert not added and not removed, (
        f"{package}.__all__ changed (added {sorted(added)}, removed {sorted(removed)}): if that is intended, "
        "update PUBLIC in tests/test_public_api.py in the same commit"
    )


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_every_exported_name_exists_and_nothing_private_is_exported(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert hasattr(module, name), f"{package}.{name} is in __all__ but not defined"
        assert not name.startswith("_") or name == "__version__"


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from maker import *", namespace)
    assert set(namespace) - {"__builtins__"} == PUBLIC["maker"]


def test_every_maker_error_is_in_the_tree() -> None:
    from maker import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.MakerError)
    assert issubclass(errors.VoteUndecided, errors.RunError)
    assert issubclass(errors.ConfigError, errors.UsageError)
    assert not issubclass(errors.RunError, errors.UsageError)


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_one_import_namespace_that_a_users_own_tasks_py_cannot_shadow(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text("raise SystemExit('the user tasks.py was imported')\n")
    (tmp_path / "traces.py").write_text("raise SystemExit('the user traces.py was imported')\n")
    done = _python("import maker, maker.tasks, maker.traces, maker.voting; print(maker.tasks.task_names())", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "hanoi" in done.stdout
    for name in ("voting",):  # no generic top-level names are installed
        gone = _python(f"import {name}", tmp_path)
        assert "ModuleNotFoundError" in gone.stderr


def test_reading_traces_does_not_load_the_runtime(tmp_path: Path) -> None:
    done = _python("import sys, maker.traces; print('maker._runner' in sys.modules, 'openai' in sys.modules)", tmp_path)
    assert done.stdout.split() == ["False", "False"], done.stderr


def test_python_dash_m_maker_is_the_maker_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "maker", "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.startswith("maker ")

"""The task registry: what `maker tasks` lists and `maker run TASK` builds.

Three sources: the built-in tasks, tasks registered from Python (`register`),
and installed packages' tasks, found through the entry-point group
`maker.tasks` the first time the registry is read::

    # a package's pyproject.toml
    [project.entry-points."maker.tasks"]
    mytask = "mypackage.tasks:MYTASK"     # a TaskInfo, a list of them, or a function returning them
"""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from typing import Any

from maker.errors import ConfigError
from maker.tasks._batch import BATCH, Batch
from maker.tasks._protocol import Chain, Oracle, Param, Task, TaskInfo

_REGISTRY: dict[str, TaskInfo] = {}


def register(info: TaskInfo) -> TaskInfo:
    """Add a task (and its simulator oracle) so the CLI and the simulator find it."""
    for name in (info.name, *info.aliases):
        _REGISTRY[name] = info
    return info


def task_names() -> list[str]:
    """Every registered task's name (aliases aside), sorted."""
    _load_plugins()
    return sorted({info.name for info in _REGISTRY.values()})


def task_info(name: str) -> TaskInfo:
    """The registered task `name` (or alias); an unknown name is a ConfigError listing the known ones."""
    _load_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r} (known: {', '.join(task_names())})") from None


def build_task(name: str, **options: Any) -> Task:
    """Build a task from CLI-style options; unknown options are an error, not ignored.

    `batch=N` builds N instances of the task at once (from `instance` on), as
    one DAG of disjoint parts; see `maker.tasks._batch`.
    """
    count = options.pop(BATCH, None)
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int):
            raise ConfigError(f"batch must be an int, got {count!r}")
        return _batch(name, count, options)
    info = task_info(name)
    known = {p.name: p for p in info.params}
    unknown = set(options) - set(known)
    if unknown:
        raise ConfigError(f"task {name!r} has no option {sorted(unknown)[0]!r}")
    values = {p.name: p.default for p in info.params}
    for key, value in options.items():
        values[key] = _checked(known[key], value)
    return info.factory(**values)


def _checked(param: Param, value: Any) -> Any:
    """One option's value, of the option's type and at least its minimum."""
    flag = "--" + param.name.replace("_", "-")
    if param.type is float and type(value) is int:
        value = float(value)
    typed = isinstance(value, param.type) and not (isinstance(value, bool) and param.type is not bool)
    if not typed:
        raise ConfigError(f"{flag} must be {param.type.__name__}, got {value!r}")
    if param.minimum is not None and value < param.minimum:
        raise ConfigError(f"{flag} must be >= {param.minimum}, got {value}")
    if param.maximum is not None and value > param.maximum:
        raise ConfigError(f"{flag} must be <= {param.maximum}, got {value}")
    return value


ENTRY_POINTS = "maker.tasks"  # the entry-point group a package's tasks are found by
_plugins = {"loaded": False}


def _load_plugins() -> None:
    """Register the tasks of installed packages (entry-point group `maker.tasks`), once.

    An entry point names a `TaskInfo`, a list of them, or a function returning
    either (or registering them itself and returning None). One that fails to
    load, or takes a name already registered, is skipped with a warning: a
    broken third-party package must not stop the built-in tasks.
    """
    if _plugins["loaded"]:
        return
    _plugins["loaded"] = True
    for ep in entry_points(group=ENTRY_POINTS):
        try:
            infos = _infos(ep.load())
        except Exception as exc:  # a third party's import error, whatever it is
            _warn(f"task plugin {ep.name!r} ({ep.value}) could not be loaded: {type(exc).__name__}: {exc}")
            continue
        for info in infos:
            taken = [n for n in (info.name, *info.aliases) if n in _REGISTRY and _REGISTRY[n] is not info]
            if taken:
                _warn(f"task plugin {ep.name!r} ({ep.value}): the task name {taken[0]!r} is taken; skipped")
                continue
            register(info)


def _infos(value: object) -> list[TaskInfo]:
    if callable(value) and not isinstance(value, TaskInfo):
        value = value()
    if value is None:
        return []
    if isinstance(value, TaskInfo):
        return [value]
    if isinstance(value, list | tuple) and all(isinstance(v, TaskInfo) for v in value):
        return list(value)
    raise TypeError(f"expected a TaskInfo, a list of them or a function returning them, got {type(value).__name__}")


def _warn(message: str) -> None:
    warnings.warn(f"maker: {message}", RuntimeWarning, stacklevel=3)


def _batch(name: str, count: int, options: dict[str, Any]) -> Task:
    known = {p.name for p in task_info(name).params}
    if "instance" not in known:
        raise ConfigError(f"task {name!r} has no instances to batch (it takes no --instance)")
    if count < 1:
        raise ConfigError(f"a batch needs at least 1 instance, got {count}")
    first = int(options.get("instance", 0))
    tasks = [build_task(name, **{**options, "instance": first + j}) for j in range(count)]
    if isinstance(tasks[0].plan(), Chain):
        raise ConfigError(f"task {name!r} is a chain; a batch needs a task whose plan is a DAG")
    return Batch(name, tasks, {**options, "instance": first})


def oracles() -> list[Oracle]:
    """Every registered task's simulator oracle, for the simulated model."""
    _load_plugins()
    seen: list[Oracle] = []
    for info in _REGISTRY.values():
        if info.oracle is not None and info.oracle not in seen:
            seen.append(info.oracle)
    return seen


def _register_builtin() -> None:
    from maker.tasks.hanoi import Hanoi, HanoiOracle

    register(
        TaskInfo(
            name="hanoi",
            summary="Towers of Hanoi: 2^n − 1 chained moves (the paper's million-step task)",
            params=(Param("disks", int, 10, "number of disks, at most 30", minimum=1, maximum=30),),
            factory=Hanoi,
            oracle=HanoiOracle(),
        )
    )
    _register_wide_tasks()
    _register_small_tasks()


def _register_small_tasks() -> None:
    """Chains a small real model can do (issue 12): errors voting fixes, and errors it locks in."""
    from maker.tasks.count import Count, CountOracle
    from maker.tasks.letters import Letters, LettersOracle

    length = Param("length", int, 100, "steps in the chain", minimum=1)
    register(
        TaskInfo(
            name="count",
            summary="add one, again and again, from a start value (few-shot; replies of at most 4 tokens)",
            params=(Param("start", int, 30, "the first input", minimum=0), length),
            factory=Count,
            oracle=CountOracle(),
        )
    )
    register(
        TaskInfo(
            name="letters",
            summary="the next letter of the alphabet (given in the prompt), z wrapping to a (one-token replies)",
            params=(
                Param("start", int, 0, "the first letter, 0 = a", minimum=0),
                Param("length", int, 52, "steps in the chain", minimum=1),
            ),
            factory=Letters,
            oracle=LettersOracle(),
        )
    )


def _register_wide_tasks() -> None:
    from maker.tasks.arithmetic import MAX_DIGITS, Addition, AdditionOracle
    from maker.tasks.sorting import MAX_LENGTH, Sorting, SortingOracle

    instance = Param("instance", int, 0, "which random instance (numbers or list) to solve", minimum=0)
    register(
        TaskInfo(
            name="arithmetic",
            summary="long addition of two n-digit numbers: n column sums in parallel, then the n-step carry chain",
            params=(Param("digits", int, 100, f"digits per number, at most {MAX_DIGITS:,}", minimum=1), instance),
            factory=Addition,
            oracle=AdditionOracle(),
            aliases=("addition",),
        )
    )
    register(
        TaskInfo(
            name="sorting",
            summary="sort a list with Batcher's sorting network: one compare-exchange per step, in parallel layers",
            params=(Param("length", int, 64, f"numbers to sort, at most {MAX_LENGTH:,}", minimum=2), instance),
            factory=Sorting,
            oracle=SortingOracle(),
        )
    )
    _register_recursive_tasks()


def _register_recursive_tasks() -> None:
    from maker.tasks.multiplication import MAX_DIGITS, Multiplication

    # No oracle here: the simulator plays this task's roles itself (maker.backends._sim_roles).
    register(
        TaskInfo(
            name="multiplication",
            summary="multi-digit multiplication that the model decomposes itself, every decision voted (Appendix F)",
            params=(
                Param("digits", int, 5, f"digits per number (the paper: 5, 6, 10), at most {MAX_DIGITS}", minimum=1),
                Param("problems", int, 200, "problems to solve, drawn from --problem-seed", minimum=1),
                Param("planner", str, "recursive", "recursive (the model decomposes) or single (one call each)"),
                Param("problem_seed", int, 0, "which set of random problems", minimum=0),
                Param("max_depth", int, 5, "deepest sub-problem; a split below it stops the run", minimum=0),
                Param("max_nodes", int, 1_000, "most DAG nodes per problem's tree", minimum=2),
            ),
            factory=Multiplication,
        )
    )


_register_builtin()

"""The task registry: what `maker tasks` lists and `maker run TASK` builds."""

from __future__ import annotations

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
    return sorted({info.name for info in _REGISTRY.values()})


def task_info(name: str) -> TaskInfo:
    """The registered task `name` (or alias); an unknown name is a ConfigError listing the known ones."""
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
    return value


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
            params=(Param("disks", int, 10, "number of disks, at most 30", minimum=1),),
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

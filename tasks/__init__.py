"""Tasks: what a step is (prompt, strict parser, vote key) and ground truth for scoring.

One module per task; the registry lets the CLI and the simulator find them.
"""

from __future__ import annotations

from maker.tasks._protocol import (
    Chain,
    Inputs,
    LLMStep,
    Messages,
    NodeId,
    Oracle,
    Param,
    PythonStep,
    SampleableTask,
    Task,
    TaskInfo,
)
from maker.tasks._registry import build_task, oracles, register, task_info, task_names

__all__ = [
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
]

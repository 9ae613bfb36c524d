"""A sharded run's manifest: the list of its shards, each an ordinary trace beside it.

The manifest is written before any shard starts, and holds each shard's job
(what to run, with which settings and budget share), so `maker resume
MANIFEST` can run any unfinished shard again. Traces stay the one record: the
manifest holds no result, and `merge_shards` rebuilds one trace from them.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from maker.errors import TraceError

MANIFEST_TYPE = "maker-manifest"
MANIFEST_VERSION = 1


def write_manifest(path: Path, run_id: str, jobs: Sequence[dict[str, Any]], executor: str) -> None:
    """Write the manifest atomically; each job's trace is named relative to it."""
    named = [{**j, "trace": Path(str(j["trace"])).name} for j in jobs]
    body = {
        "type": MANIFEST_TYPE,
        "version": MANIFEST_VERSION,
        "run_id": run_id,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "executor": executor,
        "shards": [{"index": j["index"], "count": j["count"], "trace": j["trace"]} for j in named],
        "jobs": named,
    }
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(body, indent=1) + "\n")
    os.replace(tmp, path)


def is_manifest(path: str | Path) -> bool:
    """Whether `path` is a sharded run's manifest (by its content, not only its name)."""
    p = Path(path)
    if p.suffix != ".json" or not p.is_file():
        return False
    try:
        with p.open("rb") as f:
            head = f.read(256)
    except OSError:
        return False
    return MANIFEST_TYPE.encode() in head


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest's content, checked; a bad one is one TraceError line naming the file."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise TraceError(f"{p}: no such manifest") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise TraceError(f"{p}: not a readable manifest ({exc})") from None
    if not isinstance(data, dict) or data.get("type") != MANIFEST_TYPE:
        raise TraceError(f"{p}: not a maker manifest")
    if data.get("version") != MANIFEST_VERSION:
        raise TraceError(f"{p}: manifest version {data.get('version')!r} is not supported")
    jobs, shards = data.get("jobs"), data.get("shards")
    if not isinstance(jobs, list) or not jobs or not all(isinstance(j, dict) for j in jobs):
        raise TraceError(f"{p}: the manifest lists no shard jobs")
    if not isinstance(shards, list) or not all(isinstance(s, dict) and isinstance(s.get("trace"), str) for s in shards):
        raise TraceError(f"{p}: the manifest's shard list is malformed")
    return data


def shard_traces(manifest: str | Path) -> list[Path]:
    """The shards' traces that exist, in shard order (a shard killed before its header has none)."""
    p = Path(manifest)
    named = [p.parent / Path(str(s["trace"])).name for s in read_manifest(p)["shards"]]
    return [t for t in named if t.exists()]

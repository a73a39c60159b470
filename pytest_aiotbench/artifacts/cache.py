"""A content-addressed cache of exported artifacts, safe for concurrent sessions.

An entry's key is everything that changes its bytes: the network card, the weights' hash,
the framework and its export revision, the tool versions. Each entry is a folder holding
the artifact and a ``meta.json`` written last: an entry without ``meta.json`` is
incomplete and is rebuilt. A per-key file lock makes a second session wait for the first
one's export instead of repeating it.

What the cache serves is hashed again and checked against the sha256 recorded when it was
stored: a file that changed behind the cache's back (a flipped bit, an edit, a truncation) is
a corrupt entry. It is reported (a ``CorruptCacheEntry`` warning naming the file), discarded
and exported again, so no result is ever measured from a file that is not the one its sha256
names. The hashing is part of the export stage, never of a timing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


class CorruptCacheEntry(UserWarning):
    """A cached artifact no longer has the bytes it was stored with; it is exported again."""


@dataclasses.dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str
    size_bytes: int
    key: str
    built: bool
    build_s: float
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "sha256": self.sha256, "bytes": self.size_bytes,
                "cache_key": self.key, "built_this_session": self.built,
                "build_s": self.build_s, "notes": list(self.notes)}


class ArtifactCache:
    def __init__(self, root: Path):
        self.root = Path(root)

    def key(self, parts: dict[str, Any]) -> str:
        canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:24]

    def get_or_build(
        self,
        label: str,
        parts: dict[str, Any],
        filename: str,
        build: Callable[[Path], list[str]],
        on_build_start: Callable[[str], None] | None = None,
    ) -> Artifact:
        """Return the cached artifact for ``parts``, building it with ``build(path)`` if absent."""
        key = self.key(parts)
        entry = self.root / f"{label}-{key}"
        self.root.mkdir(parents=True, exist_ok=True)
        with _locked(self.root / f".{label}-{key}.lock"):
            cached = _read_entry(entry, filename, key)
            if cached is not None:
                return cached
            if on_build_start is not None:
                on_build_start(label)
            started = time.perf_counter()
            staging = Path(tempfile.mkdtemp(prefix=f".{label}-", dir=self.root))
            try:
                notes = build(staging / filename)
                if not (staging / filename).is_file():
                    raise RuntimeError(f"the export wrote no {filename}")
                build_s = time.perf_counter() - started
                digest = sha256_file(staging / filename)
                meta = {"key": key, "parts": parts, "sha256": digest, "notes": notes,
                        "bytes": (staging / filename).stat().st_size,
                        "build_s": build_s, "created": time.time(), "filename": filename}
                (staging / "meta.json").write_text(json.dumps(meta, indent=1))
                if entry.exists():  # an incomplete entry left by a killed session
                    shutil.rmtree(entry)
                os.replace(staging, entry)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return Artifact(entry / filename, digest, (entry / filename).stat().st_size, key,
                            True, build_s, tuple(notes))


def _read_entry(entry: Path, filename: str, key: str) -> Artifact | None:
    """The stored artifact, its bytes checked against its recorded sha256; None where there
    is none (absent, or incomplete: no ``meta.json``) or it was corrupt (then discarded)."""
    path = entry / filename
    try:
        meta = json.loads((entry / "meta.json").read_text())
        recorded = meta["sha256"]
        size = path.stat().st_size
        digest = sha256_file(path) if meta.get("bytes") == size else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if digest != recorded:
        found = (f"sha256 {digest[:16]}..., not the {recorded[:16]}... recorded"
                 if digest is not None else f"{size} bytes, not the {meta.get('bytes')} recorded")
        shutil.rmtree(entry, ignore_errors=True)
        warnings.warn(CorruptCacheEntry(
            f"aiotbench: corrupt cache entry {path}: {found} when it was stored; discarded, "
            "exporting it again"), stacklevel=2)
        return None
    return Artifact(path, recorded, size, key, False, 0.0, tuple(meta.get("notes", ())))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()

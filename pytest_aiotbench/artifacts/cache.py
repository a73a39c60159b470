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

Each entry also records its delegation facts (``delegation.Delegation``: which operators the
framework hands to its delegate), found by ``describe`` when the entry is built. An entry
stored before the cache recorded them is described once when it is next served, and its
``meta.json`` rewritten: the facts come from reading the file (seconds), so every artifact
exported since the adapters' last ``export_revision`` keeps its bytes rather than being
exported again (minutes a network). An analysis that fails is recorded as none, with a note,
and never fails the export.
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

from pytest_aiotbench.artifacts.delegation import Delegation

#: What ``describe`` is: the delegation facts of the artifact at a path.
Describe = Callable[[Path], Delegation]
#: ``meta.json``'s key for the delegation facts (null where the analysis failed).
DELEGATION_KEY = "delegation"


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
    #: Which operators the framework hands to its delegate; None where it was not analysed
    #: (the notes say why).
    delegation: Delegation | None = None
    #: The export worker's peak memory while it made this file (None: taken from the cache,
    #: or exported where it was not measured).
    export_peak_rss_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "sha256": self.sha256, "bytes": self.size_bytes,
                "cache_key": self.key, "built_this_session": self.built,
                "build_s": self.build_s, "export_peak_rss_bytes": self.export_peak_rss_bytes,
                "notes": list(self.notes),
                "delegation": self.delegation.to_json() if self.delegation else None}


@dataclasses.dataclass(frozen=True)
class ExportCost:
    """What one export of the session cost: its file, seconds and the worker's peak memory."""

    artifact: str
    build_s: float
    peak_rss_bytes: int | None

    @classmethod
    def of(cls, artifact: Artifact) -> ExportCost:
        return cls(artifact.path.name, artifact.build_s, artifact.export_peak_rss_bytes)


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
        describe: Describe | None = None,
    ) -> Artifact:
        """Return the cached artifact for ``parts``, building it with ``build(path)`` if absent;
        ``describe(path)`` finds its delegation facts (none recorded without it)."""
        key = self.key(parts)
        entry = self.root / f"{label}-{key}"
        self.root.mkdir(parents=True, exist_ok=True)
        with _locked(self.root / f".{label}-{key}.lock"):
            cached = _read_entry(entry, filename, key)
            if cached is not None:
                return _described_once(entry, cached, describe)
            if on_build_start is not None:
                on_build_start(label)
            started = time.perf_counter()
            staging = Path(tempfile.mkdtemp(prefix=f".{label}-", dir=self.root))
            try:
                notes = build(staging / filename)
                if not (staging / filename).is_file():
                    raise RuntimeError(f"the export wrote no {filename}")
                build_s = time.perf_counter() - started
                delegation, note = _analysed(describe, staging / filename)
                notes = [*notes, *note]
                digest = sha256_file(staging / filename)
                meta = {"key": key, "parts": parts, "sha256": digest, "notes": notes,
                        "bytes": (staging / filename).stat().st_size,
                        "build_s": build_s, "created": time.time(), "filename": filename}
                if describe is not None:
                    meta[DELEGATION_KEY] = delegation.to_json() if delegation else None
                (staging / "meta.json").write_text(json.dumps(meta, indent=1))
                if entry.exists():  # an incomplete entry left by a killed session
                    shutil.rmtree(entry)
                os.replace(staging, entry)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return Artifact(entry / filename, digest, (entry / filename).stat().st_size, key,
                            True, build_s, tuple(notes), delegation)


def _analysed(describe: Describe | None, path: Path) -> tuple[Delegation | None, list[str]]:
    """The artifact's delegation facts, or None and the note that says why not: whatever
    the analysis raises, the export stands."""
    if describe is None:
        return None, []
    try:
        return describe(path), []
    except Exception as exc:
        return None, [f"delegation not analysed: {type(exc).__name__}: {exc}"]


def _described_once(entry: Path, artifact: Artifact, describe: Describe | None) -> Artifact:
    """A served entry with its delegation facts: those recorded, or (an entry stored before
    they were recorded) found now and recorded in its ``meta.json``."""
    if artifact.delegation is not None or describe is None:
        return artifact
    meta_path = entry / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return artifact
    if DELEGATION_KEY in meta and meta[DELEGATION_KEY] is None:
        return artifact  # analysed before, and it failed: its note is among the notes
    delegation, note = _analysed(describe, artifact.path)
    meta[DELEGATION_KEY] = delegation.to_json() if delegation else None
    meta["notes"] = [*meta.get("notes", ()), *note]
    staged = entry / ".meta.json.new"
    try:
        staged.write_text(json.dumps(meta, indent=1))
        os.replace(staged, meta_path)
    except OSError:  # a read-only cache: this session still has the facts
        staged.unlink(missing_ok=True)
    return dataclasses.replace(artifact, notes=(*artifact.notes, *note), delegation=delegation)


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
    recorded_delegation = meta.get(DELEGATION_KEY)
    try:
        delegation = Delegation.from_json(recorded_delegation) if recorded_delegation else None
    except (KeyError, TypeError, ValueError, AttributeError):
        delegation = None  # unreadable: not recorded (it is not part of the artifact's bytes)
    return Artifact(path, recorded, size, key, False, 0.0, tuple(meta.get("notes", ())),
                    delegation)


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

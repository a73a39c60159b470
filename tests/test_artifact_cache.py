"""The artifact cache: built once, reused, safe when sessions build at once; what it serves
is the file its recorded sha256 names, or it is built again."""

from __future__ import annotations

import hashlib
import multiprocessing
import time
from pathlib import Path

import pytest

from pytest_aiotbench.artifacts import ArtifactCache, CorruptCacheEntry

PARTS = {"network": "n", "framework": "f", "tools": {"torch": "x"}}


def slow_build(marker_dir: str):
    def build(destination: Path) -> list[str]:
        # Each build leaves a mark, so the test can count how many builds really ran.
        (Path(marker_dir) / f"built-{time.monotonic_ns()}").touch()
        time.sleep(0.5)
        destination.write_bytes(b"artifact bytes")
        return ["a note"]

    return build


def test_built_once_then_reused(tmp_path):
    cache = ArtifactCache(tmp_path / "cache")
    first = cache.get_or_build("n-f", PARTS, "n.bin", slow_build(str(tmp_path)))
    second = cache.get_or_build("n-f", PARTS, "n.bin", slow_build(str(tmp_path)))
    assert first.built and not second.built
    assert first.path == second.path and first.sha256 == second.sha256
    assert second.notes == ("a note",)
    assert len(list(tmp_path.glob("built-*"))) == 1


def test_any_change_of_key_is_a_new_artifact(tmp_path):
    cache = ArtifactCache(tmp_path / "cache")
    a = cache.get_or_build("n-f", PARTS, "n.bin", slow_build(str(tmp_path)))
    b = cache.get_or_build("n-f", {**PARTS, "tools": {"torch": "y"}}, "n.bin",
                           slow_build(str(tmp_path)))
    assert a.key != b.key and b.built


def test_a_truncated_entry_is_reported_and_rebuilt(tmp_path):
    cache = ArtifactCache(tmp_path / "cache")
    first = cache.get_or_build("n-f", PARTS, "n.bin", slow_build(str(tmp_path)))
    first.path.write_bytes(b"trunc")
    with pytest.warns(CorruptCacheEntry, match="corrupt cache entry .*: 5 bytes, not the 14"):
        again = cache.get_or_build("n-f", PARTS, "n.bin", slow_build(str(tmp_path)))
    assert again.built and again.path.read_bytes() == b"artifact bytes"


def test_an_entry_with_flipped_bytes_of_the_same_size_is_reported_and_rebuilt(tmp_path):
    cache = ArtifactCache(tmp_path / "cache")
    first = cache.get_or_build("n-f", PARTS, "n.bin", slow_build(str(tmp_path)))
    flipped = bytearray(first.path.read_bytes())
    flipped[3] ^= 0x01
    flipped[4] ^= 0x80
    first.path.write_bytes(bytes(flipped))
    with pytest.warns(CorruptCacheEntry) as reported:
        again = cache.get_or_build("n-f", PARTS, "n.bin", slow_build(str(tmp_path)))
    message = str(reported[0].message)
    assert "corrupt" in message and str(first.path) in message
    assert f"not the {first.sha256[:16]}" in message
    assert again.built and again.path.read_bytes() == b"artifact bytes"
    assert again.sha256 == first.sha256
    assert len(list(tmp_path.glob("built-*"))) == 2
    # Sound again: served from the cache, silently.
    served = cache.get_or_build("n-f", PARTS, "n.bin", slow_build(str(tmp_path)))
    assert not served.built
    assert hashlib.sha256(served.path.read_bytes()).hexdigest() == served.sha256


def test_an_entry_whose_record_is_unreadable_is_rebuilt(tmp_path):
    cache = ArtifactCache(tmp_path / "cache")
    first = cache.get_or_build("n-f", PARTS, "n.bin", slow_build(str(tmp_path)))
    (first.path.parent / "meta.json").write_text("{")  # a damaged record
    again = cache.get_or_build("n-f", PARTS, "n.bin", slow_build(str(tmp_path)))
    assert again.built and again.path.read_bytes() == b"artifact bytes"


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    cache = ArtifactCache(tmp_path / "cache")

    def failing(destination: Path) -> list[str]:
        destination.write_bytes(b"half")
        raise RuntimeError("exporter exploded")

    try:
        cache.get_or_build("n-f", PARTS, "n.bin", failing)
    except RuntimeError as exc:
        assert "exploded" in str(exc)
    entries = [p for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")]
    assert entries == []


def _build_in_other_process(cache_root: str, marker_dir: str, queue) -> None:
    artifact = ArtifactCache(Path(cache_root)).get_or_build(
        "n-f", PARTS, "n.bin", slow_build(marker_dir))
    queue.put((artifact.built, str(artifact.path)))


def test_two_sessions_at_once_build_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_build_in_other_process,
                               args=(str(tmp_path / "cache"), str(tmp_path), queue))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    outcomes = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert sorted(built for built, _ in outcomes) == [False, True]
    assert len({path for _, path in outcomes}) == 1
    assert len(list(tmp_path.glob("built-*"))) == 1

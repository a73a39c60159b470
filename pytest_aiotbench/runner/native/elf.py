"""Just enough of ELF to bundle a runner: a shared object's SONAME and DT_NEEDED entries.

Read from the file itself, so it works the same for host binaries and for Android builds of
another architecture (no readelf of the right target needed).
"""

from __future__ import annotations

import dataclasses
import mmap
import struct
from pathlib import Path

DT_NEEDED, DT_SONAME, DT_STRTAB, DT_STRSZ = 1, 14, 5, 10
SHT_DYNAMIC = 6


class NotElf(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class DynamicInfo:
    soname: str | None
    needed: tuple[str, ...]


def dynamic_info(path: Path) -> DynamicInfo:
    with open(path, "rb") as handle:
        if handle.read(4) != b"\x7fELF":
            raise NotElf(f"{path} is not an ELF file")
        # Mapped, not read: libtorch_cpu.so is 400 MB and only its headers are wanted.
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _dynamic_info(data)


def _dynamic_info(data: mmap.mmap) -> DynamicInfo:
    wide = data[4] == 2
    order = "<" if data[5] == 1 else ">"
    if wide:
        shoff, = struct.unpack_from(order + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x3A)
    else:
        shoff, = struct.unpack_from(order + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x2E)
    sections = []
    for index in range(shnum):
        base = shoff + index * shentsize
        if wide:
            _, kind, _, _, offset, size, link, _, _, entsize = struct.unpack_from(
                order + "IIQQQQIIQQ", data, base)
        else:
            _, kind, _, _, offset, size, link, _, _, entsize = struct.unpack_from(
                order + "IIIIIIIIII", data, base)
        sections.append((kind, offset, size, link, entsize))
    for kind, offset, size, link, entsize in sections:
        if kind != SHT_DYNAMIC:
            continue
        # The dynamic section's sh_link is its string table.
        _, str_offset, _, _, _ = sections[link]
        entry = "qQ" if wide else "iI"
        needed: list[str] = []
        soname = None
        for at in range(offset, offset + size, entsize or struct.calcsize(order + entry)):
            tag, value = struct.unpack_from(order + entry, data, at)
            if tag == 0:
                break
            if tag in (DT_NEEDED, DT_SONAME):
                start = str_offset + value
                name = data[start:data.find(b"\0", start)].decode()
                if tag == DT_NEEDED:
                    needed.append(name)
                else:
                    soname = name
        return DynamicInfo(soname, tuple(needed))
    return DynamicInfo(None, ())  # statically linked


def bundle_closure(executable: Path, search_dirs: list[Path]) -> dict[str, Path]:
    """The shared libraries ``executable`` needs, directly or not, that live in
    ``search_dirs`` (the frameworks' own folders), keyed by the name the loader asks for
    (a library's SONAME, which may differ from its file name: libonnxruntime.so.1).
    Libraries found nowhere there (libc, libstdc++, libm) are the system's."""
    index: dict[str, Path] = {}
    for folder in search_dirs:
        for candidate in sorted(Path(folder).glob("*.so*")):
            if not candidate.is_file():
                continue
            try:
                soname = dynamic_info(candidate).soname
            except (NotElf, struct.error):
                continue
            index.setdefault(candidate.name, candidate)
            if soname:
                index.setdefault(soname, candidate)
    found: dict[str, Path] = {}
    pending = list(dynamic_info(executable).needed)
    while pending:
        name = pending.pop()
        if name in found or name not in index:
            continue
        found[name] = index[name].resolve()
        pending.extend(dynamic_info(found[name]).needed)
    return found

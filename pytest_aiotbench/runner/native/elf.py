"""Just enough of ELF to bundle a runner and to tell whether a device can execute it: a shared
object's SONAME and DT_NEEDED entries, an executable's machine and dynamic loader.

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
#: The section of the symbol versions a file needs from each library (GLIBC_2.34, ...).
SHT_GNU_VERNEED = 0x6FFFFFFE
PT_INTERP = 3

#: e_machine values -> the architecture's name as ``uname -m`` says it; where the ELF class
#: decides, the 32- or 64-bit one.
_MACHINES = {3: "i686", 20: "ppc", 21: "ppc64", 22: "s390x", 40: "arm", 62: "x86_64",
             183: "aarch64"}
_MACHINES_BY_CLASS = {(8, 32): "mips", (8, 64): "mips64", (22, 32): "s390",
                      (243, 32): "riscv32", (243, 64): "riscv64"}
#: What uname -m and Android's ABI names (ro.product.cpu.abi) call each architecture, as one
#: name, so a binary's machine and a device's compare.
_ARCHITECTURES = {
    "aarch64": ("aarch64", "arm64", "arm64-v8a"),
    "arm": ("arm", "armeabi", "armeabi-v7a", "armv5tel", "armv6l", "armv7l", "armv7",
            "armv8l", "armhf", "armel"),
    "x86_64": ("x86_64", "amd64", "x86-64"),
    "i686": ("i686", "i586", "i486", "i386", "x86"),
}
#: A 64-bit CPU's kernel may run its 32-bit sibling's binaries (where its userland has the
#: 32-bit loader: some phones and boards do, 64-bit-only ones do not).
COMPATIBLE = {("aarch64", "arm"), ("x86_64", "i686")}


class NotElf(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class DynamicInfo:
    soname: str | None
    needed: tuple[str, ...]
    #: The symbol versions it needs, as (library, version): ("libc.so.6", "GLIBC_2.34").
    versions: tuple[tuple[str, str], ...] = ()

    def glibc_needed(self) -> tuple[int, int] | None:
        """The newest glibc release its GLIBC_x.y symbol versions ask for (None: none)."""
        found = [glibc_version(version) for _, version in self.versions
                 if version.startswith("GLIBC_")]
        return max((release for release in found if release), default=None)


def glibc_version(version: str) -> tuple[int, int] | None:
    """(2, 34) from GLIBC_2.34 or 2.34; None for what is not a release (GLIBC_PRIVATE)."""
    parts = version.removeprefix("GLIBC_").split(".")
    if len(parts) < 2 or not all(part.isdigit() for part in parts[:2]):
        return None  # GLIBC_PRIVATE
    return int(parts[0]), int(parts[1])


@dataclasses.dataclass(frozen=True)
class Header:
    """What decides where an executable can run."""

    #: The architecture, as ``architecture()`` names it (``uname -m``'s names): aarch64, ...
    machine: str
    #: 32 or 64.
    bits: int
    #: The dynamic loader the kernel starts it with (PT_INTERP); None: statically linked.
    interpreter: str | None

    def describe(self) -> str:
        """'a 64-bit aarch64 ELF' (and its loader): as messages say it."""
        loader = f" (loader {self.interpreter})" if self.interpreter else " (static)"
        return f"a {self.bits}-bit {self.machine} ELF{loader}"


def architecture(name: str | None) -> str | None:
    """One name for an architecture however a device says it (``uname -m``, an Android ABI):
    armv7l and armeabi-v7a are 'arm', arm64-v8a is 'aarch64'. None: not known here."""
    if not name:
        return None
    name = name.strip().lower()
    for architecture_name, aliases in _ARCHITECTURES.items():
        if name in aliases:
            return architecture_name
    known = {*_MACHINES.values(), *_MACHINES_BY_CLASS.values(), "ppc64le"}
    return name if name in known else None


#: Where the ELF header keeps a table's offset, and its entry size and count, by class.
_TABLE_FIELDS = {("program", True): (0x20, 0x36), ("program", False): (0x1C, 0x2A),
                 ("section", True): (0x28, 0x3A), ("section", False): (0x20, 0x2E)}


def _table(data: bytes | mmap.mmap, table: str) -> tuple[bool, str, int, int, int]:
    """64-bit or not, the byte order, and the program or section table's offset, entry
    size and number of entries."""
    wide = data[4] == 2
    order = "<" if data[5] == 1 else ">"
    at_offset, at_sizes = _TABLE_FIELDS[(table, wide)]
    offset, = struct.unpack_from(order + ("Q" if wide else "I"), data, at_offset)
    entry_size, count = struct.unpack_from(order + "HH", data, at_sizes)
    return wide, order, offset, entry_size, count


def header(path: Path) -> Header:
    """The machine, class and loader of an ELF file (its first pages only)."""
    with open(path, "rb") as handle:
        data = handle.read(64)
        if data[:4] != b"\x7fELF" or len(data) < 52:
            raise NotElf(f"{path} is not an ELF file")
        wide, order, phoff, phentsize, phnum = _table(data, "program")
        number, = struct.unpack_from(order + "H", data, 0x12)
        interpreter = None
        for index in range(min(phnum, 256)):
            handle.seek(phoff + index * phentsize)
            entry = handle.read(phentsize)
            if len(entry) < (56 if wide else 32):
                break
            if wide:
                kind, _, offset, _, _, size = struct.unpack_from(order + "IIQQQQ", entry)
            else:
                kind, offset, _, _, size = struct.unpack_from(order + "IIIII", entry)
            if kind == PT_INTERP:
                handle.seek(offset)
                interpreter = handle.read(min(size, 4096)).split(b"\0")[0].decode(
                    errors="replace")
                break
    bits = 64 if wide else 32
    name = _MACHINES_BY_CLASS.get((number, bits)) or _MACHINES.get(number)
    if name == "ppc64" and order == "<":
        name = "ppc64le"
    return Header(name or f"e_machine {number}", bits, interpreter)


def machine(path: Path) -> str:
    """The architecture an ELF file is built for, in ``uname -m``'s words (aarch64, x86_64,
    arm, i686, ...)."""
    return header(path).machine


def dynamic_info(path: Path) -> DynamicInfo:
    with open(path, "rb") as handle:
        if handle.read(4) != b"\x7fELF":
            raise NotElf(f"{path} is not an ELF file")
        # Mapped, not read: libtorch_cpu.so is 400 MB and only its headers are wanted.
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _dynamic_info(data)


def _dynamic_info(data: mmap.mmap) -> DynamicInfo:
    wide, order, shoff, shentsize, shnum = _table(data, "section")
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
    dynamic = next((section for section in sections if section[0] == SHT_DYNAMIC), None)
    if dynamic is None:
        return DynamicInfo(None, ())  # statically linked
    _, offset, size, link, entsize = dynamic
    # The dynamic section's sh_link is its string table.
    str_offset = sections[link][1]

    def string(at: int) -> str:
        start = str_offset + at
        return data[start:data.find(b"\0", start)].decode(errors="replace")

    entry = "qQ" if wide else "iI"
    needed: list[str] = []
    soname = None
    for at in range(offset, offset + size, entsize or struct.calcsize(order + entry)):
        tag, value = struct.unpack_from(order + entry, data, at)
        if tag == 0:
            break
        if tag == DT_NEEDED:
            needed.append(string(value))
        elif tag == DT_SONAME:
            soname = string(value)
    versions = [(library, version)
                for kind, offset, size, verneed_link, _ in sections if kind == SHT_GNU_VERNEED
                for library, version in _needed_versions(data, order, offset, size,
                                                         sections[verneed_link][1])]
    return DynamicInfo(soname, tuple(needed), tuple(versions))


def _needed_versions(data: mmap.mmap, order: str, offset: int, size: int,
                     strings: int) -> list[tuple[str, str]]:
    """The Verneed chain: per library, its Vernaux entries (each a version name)."""

    def string(at: int) -> str:
        return data[strings + at:data.find(b"\0", strings + at)].decode(errors="replace")

    found: list[tuple[str, str]] = []
    at, end = offset, offset + size
    for _ in range(1024):  # a bound: a corrupt chain must not loop
        if at + 16 > end:
            break
        _, count, file_name, aux, following = struct.unpack_from(order + "HHIII", data, at)
        library, aux_at = string(file_name), at + aux
        for _ in range(min(count, 1024)):
            _, _, _, name, aux_next = struct.unpack_from(order + "IHHII", data, aux_at)
            found.append((library, string(name)))
            if not aux_next:
                break
            aux_at += aux_next
        if not following:
            break
        at += following
    return found


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

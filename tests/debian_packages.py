"""Debian packages the tests drive (adbd, chromium), unpacked into a cache folder without a
system install by thin scripts (``debian/fetch_chromium.sh``, ``adbd/fetch_adbd.sh``) over the
project's one Debian fetch script (pytest_aiotbench/runner/native/fetch_debian_package.sh);
this runs them and reads what they wrote."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent / "debian"


class PackageUnavailable(RuntimeError):
    pass


def fetch_package(script: Path, cache: Path, name: str) -> dict[str, str]:
    """Run the fetch script once (later calls read the cache) and return the variables of its
    ``NAME.env`` (the binary and its library path)."""
    env_file = cache / f"{name}.env"
    if not env_file.exists():
        if not Path("/etc/debian_version").exists():
            raise PackageUnavailable(f"Debian's {name} needs a Debian machine (apt-get, dpkg)")
        done = subprocess.run(["bash", str(script), str(cache)],
                              capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0 or not env_file.exists():
            raise PackageUnavailable(f"fetching {name} failed: {done.stderr[-2000:]}")
    return dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)

"""Artifacts: networks exported per framework, cached by content."""

from pytest_aiotbench.artifacts.cache import Artifact, ArtifactCache, CorruptCacheEntry
from pytest_aiotbench.artifacts.delegation import Delegation
from pytest_aiotbench.artifacts.prepare import (
    BuildError,
    PreparedNetwork,
    export_artifact,
    prepare_network,
)

__all__ = ["Artifact", "ArtifactCache", "BuildError", "CorruptCacheEntry", "Delegation",
           "PreparedNetwork", "export_artifact", "prepare_network"]

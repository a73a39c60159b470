"""The workload matrix as pytest items: which (network, framework, variant, device) points a
test module runs, how its staged fixtures are parametrized, and in what order items run.

Each stage's fixture is parametrized on its own axis with session scope, so pytest builds a
network once, an artifact once per framework and variant, and groups the items that share
them. The ids pytest joins from the three axes are :class:`WorkloadKey` ids.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import sys
from pathlib import Path

import pytest

from pytest_aiotbench import frameworks, networks
from pytest_aiotbench.identity import (
    DEFAULT_IMPLEMENTATION,
    DEFAULT_VARIANT,
    WorkloadKey,
    framework_label,
    network_label,
)
from pytest_aiotbench.settings import Settings

#: What ``@pytest.mark.aiot(...)`` may select a test's workloads by (fnmatch patterns).
SELECTORS = ("network", "implementation", "framework", "variant", "device")
#: The staged fixtures parametrized here, one per axis.
NETWORK_AXIS, ARTIFACT_AXIS, DEVICE_AXIS = "aiot_network", "aiot_artifact", "aiot_device"
#: The reference matrix as a test module (collected by path, never imported here).
REFERENCE_MODULE = Path(__file__).resolve().parent / "suite" / "test_reference.py"


@dataclasses.dataclass(frozen=True)
class NetworkChoice:
    """The network stage's parameter: one network in one implementation."""

    name: str
    implementation: str = DEFAULT_IMPLEMENTATION

    @property
    def id(self) -> str:
        return network_label(self.name, self.implementation)


@dataclasses.dataclass(frozen=True)
class ArtifactChoice:
    """The artifact stage's parameter: one framework in one variant."""

    framework: str
    variant: str = DEFAULT_VARIANT

    @property
    def id(self) -> str:
        return framework_label(self.framework, self.variant)


def key_of(item: pytest.Item) -> WorkloadKey | None:
    """The workload an item runs (None: not a workload item, or its matrix is empty)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    network, choice, device = (params.get(name)
                               for name in (NETWORK_AXIS, ARTIFACT_AXIS, DEVICE_AXIS))
    if (not isinstance(network, NetworkChoice) or not isinstance(choice, ArtifactChoice)
            or not device):
        return None
    return WorkloadKey(device=device, network=network.name, framework=choice.framework,
                       variant=choice.variant, implementation=network.implementation)


def is_workload(item: pytest.Item) -> bool:
    """A workload item, or a test of one's own on the matrix (it takes a staged fixture)."""
    return NETWORK_AXIS in getattr(item, "fixturenames", ())


def parametrize(metafunc: pytest.Metafunc, chosen: Settings, devices: list[str]) -> None:
    """Parametrize a test's staged fixtures over its matrix: the chosen networks,
    frameworks and variants, narrowed by its ``@pytest.mark.aiot`` patterns."""
    marker = metafunc.definition.get_closest_marker("aiot")
    selection = MarkerPatterns(_selector_patterns(marker, metafunc) if marker is not None else {})
    network_choices = [
        NetworkChoice(card.name, card.implementation) for card in _networks_for(metafunc)
        if (not chosen.networks or card.name in chosen.networks)
        and networks.chosen(card, chosen.implementations)
        and selection.matches("network", card.name)
        and selection.matches("implementation", card.implementation)]
    # Every workload item carries the aiot marker: -m aiot selects them, -m "not aiot" the rest.
    metafunc.parametrize(NETWORK_AXIS, [pytest.param(choice, id=choice.id, marks=pytest.mark.aiot)
                                        for choice in network_choices],
                         indirect=True, scope="session")
    if ARTIFACT_AXIS in metafunc.fixturenames:
        choices = [ArtifactChoice(framework, variant)
                   for framework in selection.picked("framework",
                                                     chosen.frameworks or frameworks.names())
                   for variant in selection.picked("variant", chosen.variants)]
        metafunc.parametrize(ARTIFACT_AXIS, [pytest.param(choice, id=choice.id)
                                             for choice in choices],
                             indirect=True, scope="session")
    if DEVICE_AXIS in metafunc.fixturenames:
        metafunc.parametrize(DEVICE_AXIS, [pytest.param(alias, id=alias) for alias
                                           in selection.picked("device", devices)],
                             indirect=True, scope="session")


class MarkerError(ValueError):
    """A test's ``@pytest.mark.aiot`` names what it cannot take (a usage error)."""


@dataclasses.dataclass(frozen=True)
class MarkerPatterns:
    """A test's ``@pytest.mark.aiot`` patterns, per axis (an axis not named takes all)."""

    patterns: dict[str, list[str]]

    def matches(self, axis: str, value: str) -> bool:
        wanted = self.patterns.get(axis)
        return wanted is None or any(fnmatch.fnmatchcase(value, p) for p in wanted)

    def picked(self, axis: str, values: tuple[str, ...] | list[str]) -> list[str]:
        return [value for value in values if self.matches(axis, value)]


def _selector_patterns(marker: pytest.Mark, metafunc: pytest.Metafunc) -> dict[str, list[str]]:
    unknown = sorted(set(marker.kwargs) - set(SELECTORS))
    if unknown or marker.args:
        raise MarkerError(f"{metafunc.definition.nodeid}: @pytest.mark.aiot takes "
                          f"{', '.join(f'{key}=' for key in SELECTORS)} patterns, not "
                          f"{', '.join(unknown) or repr(marker.args)}")
    return {key: [value] if isinstance(value, str) else list(value)
            for key, value in marker.kwargs.items()}


def _networks_for(metafunc: pytest.Metafunc) -> list[networks.NetworkCard]:
    """A module that registers networks benchmarks those; any other module benchmarks the
    networks not owned by a test module (the reference six and those from conftests)."""
    module_name = metafunc.module.__name__
    every = networks.cards()
    own = [card for card in every if card.origin == module_name]
    if own:
        return own
    patterns = metafunc.config.getini("python_files")
    return [card for card in every if not _is_test_module(card.origin, patterns)]


def _is_test_module(module_name: str, patterns: list[str]) -> bool:
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if not path:
        return False
    return any(fnmatch.fnmatch(os.path.basename(path), pattern) for pattern in patterns)


def check_networks(chosen: Settings) -> None:
    """--aiot-network names registered networks (known only once test modules are
    imported, so checked after collection)."""
    known = networks.names()
    unknown = [name for name in chosen.networks if name not in known]
    if unknown:
        raise pytest.UsageError(f"--aiot-network: unknown network "
                                f"{', '.join(map(repr, unknown))}; known networks: "
                                f"{', '.join(known)}")


def drop_empty(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A workload module whose networks the filters left out has an empty matrix: deselect
    its placeholder item rather than report it skipped."""
    empty = [item for item in items if is_workload(item) and key_of(item) is None]
    if empty:
        config.hook.pytest_deselected(items=empty)
        items[:] = [item for item in items if item not in empty]


def network_major(items: list[pytest.Item]) -> None:
    """Within the places pytest gave workload items (grouped by their session-scoped
    parameters): network first, then artifact, then device, so that one network is built at
    a time (pytest keeps one value of a parametrized session fixture at a time)."""
    places = [index for index, item in enumerate(items) if key_of(item) is not None]
    order: dict[NetworkChoice, int] = {}
    for index in places:
        order.setdefault(items[index].callspec.params[NETWORK_AXIS], len(order))
    ranked = sorted((items[index] for index in places), key=lambda item: (
        item.module.__name__, order[item.callspec.params[NETWORK_AXIS]],
        item.callspec.indices[ARTIFACT_AXIS], item.callspec.indices[DEVICE_AXIS]))
    for index, item in zip(places, ranked, strict=True):
        items[index] = item


def add_reference_matrix(session: pytest.Session, items: list[pytest.Item]) -> int:
    """The first command a user types, ``pytest --aiot-device=all`` in a project without
    workload modules, benchmarks the reference matrix rather than finding nothing to run.
    Returns the number of items added."""
    # Named as the package, not by a path outside the project, so ids read as in --pyargs.
    module = pytest.Module.from_parent(session, path=REFERENCE_MODULE,
                                       nodeid="pytest_aiotbench/suite/test_reference.py")
    added = list(session.genitems(module))
    items.extend(added)
    return len(added)

"""The staged fixtures of a workload item, one per stage of the flow:

    aiot_network  (session, per network)       the model and its fp32 reference answers
    aiot_artifact (session, per framework+variant) the exported file, from the cache or new
    aiot_device   (session, per device)        the device, discovered on first need
    aiot_deployed (session)                    the artifact and runner on the device
    aiot_measured (function)                   the timed, checked result

pytest's scoped caching decides what is done again: an artifact is exported once per
session (once across xdist workers, through the cache's lock), a network built once. A stage
that fails is an error in the item's setup naming the stage; the workload is recorded as
failed all the same (plugin.py's report hook), so the table and the JSON keep it.
"""

from __future__ import annotations

import pytest

from pytest_aiotbench.artifacts import PreparedNetwork
from pytest_aiotbench.devices import Device
from pytest_aiotbench.lab import LAB_KEY
from pytest_aiotbench.measure.result import FAILED, SKIPPED, WorkloadResult
from pytest_aiotbench.session import SESSION_KEY
from pytest_aiotbench.stages import Deployed, Exported, StageFailed, StageSkipped
from pytest_aiotbench.workload import Workload


@pytest.fixture(scope="session")
def aiot_network(request: pytest.FixtureRequest) -> PreparedNetwork:
    """The network built (random or pretrained weights) with its fp32 answers on the probes."""
    return request.config.stash[LAB_KEY].stages.network(request.param)


@pytest.fixture(scope="session")
def aiot_artifact(request: pytest.FixtureRequest, aiot_network: PreparedNetwork) -> Exported:
    """The network exported for one framework in one variant."""
    return request.config.stash[LAB_KEY].stages.artifact(aiot_network, request.param)


@pytest.fixture(scope="session")
def aiot_device(request: pytest.FixtureRequest) -> Device:
    """The device, by the alias in the test id."""
    return request.config.stash[LAB_KEY].devices[request.param]


@pytest.fixture(scope="session")
def aiot_deployed(request: pytest.FixtureRequest, aiot_artifact: Exported,
                  aiot_device: Device) -> Deployed:
    """The artifact, the probes and the runner on the device; the request written."""
    return request.config.stash[LAB_KEY].stages.deploy(aiot_artifact, aiot_device)


@pytest.fixture
def aiot_measured(request: pytest.FixtureRequest, aiot_deployed: Deployed) -> WorkloadResult:
    """One workload's measured result, for a test of your own to assert on (a latency budget,
    an accuracy floor). ``@pytest.mark.aiot(network=..., framework=..., variant=...,
    device=...)`` picks the workloads (fnmatch patterns); each is measured once a session,
    shared with its workload item. Check ``.validity.passed`` before trusting its answers."""
    session = request.config.stash[SESSION_KEY]
    earlier = session.latest(aiot_deployed.key)
    if earlier is not None:
        if earlier.status == SKIPPED:
            raise StageSkipped(earlier.stage or "measure", earlier.error or "skipped")
        if earlier.status == FAILED:
            raise StageFailed(earlier.stage or "measure", earlier.error or "failed")
        return earlier
    result = request.config.stash[LAB_KEY].stages.measure(aiot_deployed, request.node.nodeid)
    session.record(result)
    return result


@pytest.fixture
def aiot_workload(request: pytest.FixtureRequest, aiot_deployed: Deployed,
                  aiot_measured: WorkloadResult, benchmark) -> Workload:
    """The workload item's fixture: the measured result with what checks it (the fp32
    answers, the release gate). It takes pytest-benchmark's ``benchmark`` fixture to hand it
    the device-side samples (so ``--benchmark-only`` keeps workload items and
    ``--benchmark-skip`` skips them, as for any benchmark)."""
    return Workload(request.config.stash[SESSION_KEY], request.config.stash[LAB_KEY],
                    aiot_deployed, aiot_measured, request.node.nodeid, benchmark)

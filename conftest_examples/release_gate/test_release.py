"""The workloads the release gate times: the reference networks, narrowed in pytest.ini.

Add your product's own networks here with ``register_network`` (see custom_network/) and
they are gated the same way.
"""

from pytest_aiotbench import test_workload  # noqa: F401

"""The reference suite: ``pytest --pyargs pytest_aiotbench.suite`` runs the AIoTBench matrix."""

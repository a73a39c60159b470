"""The on-device runner (``aiot_runner.py``), a standalone script pushed to devices."""

"""Report: the terminal table and the JSON results."""

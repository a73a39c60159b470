"""Command-line tools around the plugin."""

"""The `almanac` command line: one composition root per command."""

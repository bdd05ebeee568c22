"""Operator tooling: the `jobstatus` command line, template reader, rebuild, smoke; never in a zip."""

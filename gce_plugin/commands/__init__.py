"""The ``gce-plugin`` commands, one module each (see gce_plugin/cli.py)."""

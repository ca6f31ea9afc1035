"""gce-plugin: Gloo's upstream plugin model in Python, with a Google Compute Engine upstream type."""

__version__ = "0.1.0"

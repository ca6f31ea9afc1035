"""Upstream plugins: the interface (``plugin``), the registry, and one package per upstream type."""

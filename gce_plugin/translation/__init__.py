"""Translation of upstreams and discovered endpoints into Envoy v3 resources."""

from gce_plugin.translation.translator import REPORTER, Delta, Result, Translator, translate_upstream

__all__ = ["REPORTER", "Delta", "Result", "Translator", "translate_upstream"]

"""Generated protobuf modules (``make generated-code``; do not edit), at Gloo's proto import paths
under this one package: ``gce_plugin_gen.github.com.solo_io...``. Use ``gce_plugin.api``."""

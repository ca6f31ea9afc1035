"""Neutral Envoy helpers, below both the plugins and translation (either may import them; they import
neither): the EDS-over-ADS config source, address checks, the upstream TLS transport socket."""

"""What an xDS client may cost and who may connect: request limits and (mutual) TLS.

- ``XdsLimits``: the largest request gRPC accepts (refused before it is parsed) and the most resource
  names one request, or one delta subscription, may hold. A client over a limit gets its stream
  closed with RESOURCE_EXHAUSTED; others are unaffected, since the bytes are never parsed and the
  names never looked up. Within the limits, a subscription is answered for at most
  ``max_unknown_names`` names the cache neither has nor expects, so what a client costs follows
  what exists, not what it asks for.
- ``XdsTls``: server certificate and key; with a client CA, clients must present a certificate that
  CA signed (mutual TLS), and a client without one is refused during the handshake.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from gce_plugin.hostport import is_loopback

log = logging.getLogger(__name__)

DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024
# An Envoy asks for one assignment per EDS cluster: 100,000 clusters fit.
DEFAULT_MAX_NAMES = 100_000
# Names per subscription answered although the cache neither has nor expects them (each answer is a
# placeholder, e.g. an empty assignment, built for that client). An Envoy names only clusters it was
# sent, so it needs a few at most (clusters being removed).
DEFAULT_MAX_UNKNOWN_NAMES = 1_000


@dataclass(frozen=True)
class XdsLimits:
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_names: int = DEFAULT_MAX_NAMES
    max_unknown_names: int = DEFAULT_MAX_UNKNOWN_NAMES


@dataclass(frozen=True)
class XdsTls:
    cert_file: str
    key_file: str
    client_ca_file: str | None = None  # set: mutual TLS, a client certificate is required

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials from the files. Raises OSError naming a file that cannot be read."""
        key, cert = _read(self.key_file), _read(self.cert_file)
        ca = _read(self.client_ca_file) if self.client_ca_file else None
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
        )


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise OSError(f"xDS TLS file {path}: {err.strerror or err}") from None


class RequestRefused(Exception):
    """A request over a limit (names per request or per subscription): the stream is closed."""


class LogBudget:
    """Per-stream log rate limit: ``burst`` lines, then one per ``interval`` seconds; each line that
    gets through says how many were suppressed before it. A client decides what it sends, never how
    much the control plane logs."""

    def __init__(self, burst: int = 10, interval: float = 10.0) -> None:
        self._burst = burst
        self._interval = interval
        self._tokens = float(burst)
        self._at = time.monotonic()
        self.suppressed = 0

    def take(self) -> int | None:
        """None: do not log. Else the number of lines suppressed since the last one logged."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) / self._interval)
        self._at = now
        if self._tokens < 1:
            self.suppressed += 1
            return None
        self._tokens -= 1
        suppressed, self.suppressed = self.suppressed, 0
        return suppressed


def names_over(limit: int) -> str:
    return f"more than {limit} resource names (run --xds-max-names)"


def warn_if_exposed(host: str, tls: XdsTls | None) -> None:
    """The loud warning for an xDS port reachable from other machines without TLS."""
    if tls is None and not is_loopback(host):
        log.warning(
            "xDS is bound beyond loopback WITHOUT TLS: anyone who can reach %s can read every cluster "
            "and endpoint, and any client is accepted. Use --xds-tls-cert/--xds-tls-key, and "
            "--xds-client-ca for mutual TLS, or bind 127.0.0.1.",
            host,
            extra={"address": host},
        )

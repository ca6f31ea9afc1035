"""Where things live in etcd. One place for every key the control plane reads or writes.

Upstreams use Go Gloo's key-value layout (solo-kit's KV resource client, root key ``gloo``)::

    <prefix>/gloo.solo.io/v1/Upstream/<namespace>/<name>     the Upstream, YAML (see codec.py)

What the leader publishes lives beside it, under a root Gloo never lists::

    <prefix>/gce-plugin/v1/leader                            the leader's identity, on its lease
    <prefix>/gce-plugin/v1/endpoints/<namespace>/<name>      discovered endpoints of one upstream
    <prefix>/gce-plugin/v1/statuses/<namespace>/<name>       status of one upstream (Accepted, ...)

One key per upstream, so a change to one upstream writes one key, and a status write never touches
the user's Upstream key (no re-translation, no lost concurrent edit).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "gloo"
UPSTREAM_DIR = "gloo.solo.io/v1/Upstream"
OWN_DIR = "gce-plugin/v1"

UpstreamRef = tuple[str, str]  # (namespace, name)


def check_ref(namespace: str, name: str) -> None:
    """A namespace and name usable as key segments. Raises ValueError."""
    for what, value in (("namespace", namespace), ("name", name)):
        if not value or "/" in value or value in (".", ".."):
            raise ValueError(f"upstream {what} {value!r}: must be non-empty and contain no '/'")


@dataclass(frozen=True)
class Layout:
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix or self.prefix.endswith("/"):
            raise ValueError(f"store prefix {self.prefix!r}: must be non-empty, without a trailing '/'")

    # --- upstreams (Gloo's layout) ---

    def upstreams(self, namespace: str | None = None) -> bytes:
        """The key prefix of every upstream, or of those of one namespace (trailing '/')."""
        base = f"{self.prefix}/{UPSTREAM_DIR}/"
        return (base + (f"{namespace}/" if namespace else "")).encode()

    def upstream(self, namespace: str, name: str) -> bytes:
        return _key(self.upstreams(), namespace, name)

    def upstream_ref(self, key: bytes) -> UpstreamRef | None:
        """(namespace, name) of an upstream key; None for a key of another shape."""
        return self.ref_under(self.upstreams(), key)

    # --- what the leader writes ---

    @property
    def leader(self) -> bytes:
        return f"{self.prefix}/{OWN_DIR}/leader".encode()

    @property
    def endpoints_dir(self) -> bytes:
        return f"{self.prefix}/{OWN_DIR}/endpoints/".encode()

    def endpoints(self, namespace: str, name: str) -> bytes:
        return _key(self.endpoints_dir, namespace, name)

    @property
    def statuses_dir(self) -> bytes:
        return f"{self.prefix}/{OWN_DIR}/statuses/".encode()

    def status(self, namespace: str, name: str) -> bytes:
        return _key(self.statuses_dir, namespace, name)

    @staticmethod
    def ref_under(directory: bytes, key: bytes) -> UpstreamRef | None:
        """(namespace, name) of ``directory``'s key ``key``; None for a key of another shape."""
        if not key.startswith(directory):
            return None
        parts = key[len(directory) :].decode(errors="replace").split("/")
        if len(parts) != 2 or not all(parts):
            return None
        return parts[0], parts[1]


def _key(directory: bytes, namespace: str, name: str) -> bytes:
    """The key of upstream (namespace, name) under ``directory`` (which ends with '/')."""
    check_ref(namespace, name)
    return directory + f"{namespace}/{name}".encode()

"""Upstream statuses in etcd (``<prefix>/gce-plugin/v1/statuses/<namespace>/<name>``).

The value is YAML: ``status`` is the ``core.solo.io.Status`` message in proto3 JSON (state by name,
``reason``, ``reportedBy``), and ``observedResourceVersion`` the upstream's resourceVersion it
judged. The leader writes them (leader.py, fenced); ``gce-plugin get upstreams`` shows them.
"""

from __future__ import annotations

import yaml
from google.protobuf import json_format

from gce_plugin.api import Status


def encode_status(status: Status, observed_resource_version: str = "") -> bytes:
    doc: dict[str, object] = {"status": json_format.MessageToDict(status)}
    if observed_resource_version:
        doc["observedResourceVersion"] = observed_resource_version
    return yaml.safe_dump(doc, sort_keys=True, default_flow_style=False).encode()


def decode_status(value: bytes) -> Status | None:
    """The status of a stored value; None when it is not one (a status is advisory: a bad one is
    shown as absent, never an error that hides the upstream)."""
    try:
        doc = yaml.safe_load(value.decode())
        status = Status()
        json_format.ParseDict(doc["status"], status)
    except (yaml.YAMLError, UnicodeDecodeError, json_format.ParseError, KeyError, TypeError):
        return None
    return status

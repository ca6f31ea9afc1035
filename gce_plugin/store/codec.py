"""Upstream values in etcd, as Go Gloo's KV config source reads and writes them.

solo-kit's KV resource client stores the whole ``Upstream`` message, ``metadata`` and ``status``
included, as ``protoutils.MarshalYAML`` writes it: jsonpb with proto3 JSON names (``upstreamSpec``,
enums by name, unset fields omitted), turned into YAML with sorted keys. ``metadata.resourceVersion``
is not trusted from the value: it is the key's etcd ``mod_revision``.

Reading validates with the manifest loader (gce_plugin/manifests.py): the same YAML parser and the
same field checks and messages, with the key in place of the file name and field paths as they are
in the value (``upstreamSpec.gce.projectId``, not ``spec.…``).
"""

from __future__ import annotations

import yaml
from google.protobuf import json_format

from gce_plugin import manifests
from gce_plugin.api import Upstream
from gce_plugin.manifests import ManifestError

_OUTSIDE_SPEC = ("metadata", "status")


def encode_upstream(upstream: Upstream) -> bytes:
    """The value written for ``upstream``: its YAML without resourceVersion (etcd keeps that) and
    without status (the leader keeps statuses under their own keys, see layout.py)."""
    resource = Upstream()
    resource.CopyFrom(upstream)
    resource.metadata.ClearField("resource_version")
    resource.ClearField("status")
    doc = json_format.MessageToDict(resource)
    return yaml.safe_dump(doc, sort_keys=True, default_flow_style=False).encode()


def same_content(a: Upstream, b: Upstream) -> bool:
    """Equal as stored: what differs only in resourceVersion or status is the same content."""
    return encode_upstream(a) == encode_upstream(b)


def decode_upstream(key: str, value: bytes, mod_revision: int, ref: tuple[str, str]) -> Upstream:
    """The Upstream stored at ``key`` (whose (namespace, name) is ``ref``). A missing
    metadata.name/namespace is taken from the key; one that contradicts the key is an error.
    Raises ManifestError naming the key and the field."""
    text = manifests.decode_text(value, key)
    try:
        documents = manifests.parse_yaml(text, key)
    except ManifestError as err:  # a value is one document: "document 1" would say nothing
        raise ManifestError(key, err.reason, line=err.line) from None
    if len(documents) != 1:
        raise ManifestError(key, f"expected one YAML document, found {len(documents)}")
    doc = documents[0][1]
    if not isinstance(doc, dict):
        raise ManifestError(key, "expected a mapping with metadata and upstreamSpec")
    metadata = _metadata(key, doc.get("metadata"), ref)
    manifest = {
        "apiVersion": manifests.API_VERSION,
        "kind": manifests.KIND,
        "metadata": metadata,
        "spec": {k: v for k, v in doc.items() if k not in _OUTSIDE_SPEC},
        "status": doc.get("status"),
    }
    try:
        (upstream,) = manifests.upstreams_from_document(manifest, key)
    except ManifestError as err:
        raise ManifestError(key, err.reason, field=_value_field(err.field)) from None
    upstream.metadata.resource_version = str(mod_revision)
    return upstream


def _metadata(key: str, value: object, ref: tuple[str, str]) -> object:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        return value  # the manifest checks report it
    namespace, name = ref
    for field, expected in (("namespace", namespace), ("name", name)):
        given = value.get(field)
        if given is not None and given != expected:
            raise ManifestError(
                key, f"{given!r} does not match the key, which says {expected!r}", field=f"metadata.{field}"
            )
    return {**value, "namespace": namespace, "name": name}


def _value_field(field: str | None) -> str | None:
    if field is None or not field.startswith("spec"):
        return field
    return field.removeprefix("spec").removeprefix(".") or None

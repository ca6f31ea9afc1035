"""Upstream manifests in the Kubernetes form Gloo users already write, loaded into ``Upstream``s.

A manifest file (``*.yaml``, ``*.yml`` or ``*.json``) holds one or more documents::

    apiVersion: gloo.solo.io/v1
    kind: Upstream
    metadata: {name: web, namespace: default, labels: {...}, annotations: {...}, resourceVersion: "7"}
    spec:
      upstreamSpec:
        gce: {instanceGroupName: web, instanceGroupRegion: us-central1-a, projectId: demo-project}

This is solo-kit's CRD layout: ``spec`` is the Upstream's proto3 JSON without ``metadata`` and
``status``; it is read with protobuf ``json_format``, so both ``instanceGroupName`` and
``instance_group_name`` are accepted. Decisions:

- Unknown fields are errors everywhere, never dropped. So are a field given under both spellings,
  two members of one oneof, a wrong type or an unknown enum value, and duplicate YAML/JSON keys.
- ``null`` means "unset", as in proto3 JSON (Go's jsonpb writes it for unset messages). An upstream
  must still end up with a type: ``spec.upstreamSpec`` has to set one member of ``upstream_type``.
- ``metadata.name`` is required (a DNS-1123 subdomain, as Kubernetes requires). A missing
  ``metadata.namespace`` becomes ``default``, what kubectl does with an unqualified manifest.
  Server-set Kubernetes fields (uid, creationTimestamp, managedFields, ...) are accepted and
  ignored, so ``kubectl get -o yaml`` output loads; ``metadata.cluster`` is not a Kubernetes field.
- ``status`` is optional and is read: solo-kit's CRD form (snake_case keys, numeric ``state``) as
  well as proto3 JSON. ``dump_upstream`` writes it back in the CRD form.
- A document of ``kind: List`` (``apiVersion: v1``, as ``kubectl get -o yaml`` prints) holds
  Upstreams under ``items``; their errors name ``items[i]``.
- Empty documents are skipped but still counted: "document 3" is the third in the file.
- In a directory, files are read in name order (dot files skipped, no recursion). The same
  (namespace, name) twice is an error, in a file or across files (then the later file is the bad one).
"""

from __future__ import annotations

import datetime
import difflib
import json
import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import yaml
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gce_plugin import safe_yaml
from gce_plugin.api import Metadata, Upstream
from gce_plugin.plugins.plugin import UpstreamKey, upstream_key, upstream_label
from gce_plugin.redact import clip, field_name
from gce_plugin.redact import show as _show_value

API_VERSION = "gloo.solo.io/v1"
KIND = "Upstream"
DEFAULT_NAMESPACE = "default"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

_LIST_API_VERSION, _LIST_KIND = "v1", "List"
_TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec", "status")
# metadata keys that map onto solo-kit Metadata (Kubernetes ObjectMeta spelling).
_METADATA_KEYS = ("name", "namespace", "labels", "annotations", "resourceVersion")
# ObjectMeta fields the API server sets: present in exported manifests, meaningless here.
_SERVER_METADATA_KEYS = frozenset(
    {
        "uid",
        "selfLink",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Puts one value back into a JSON object of its parent message, for json_format to judge.
_Wrap = Callable[[object], dict[str, Any]]


class ManifestError(ValueError):
    """A manifest that cannot be loaded.

    ``path``: the file; ``document``: 1-based index of the document in the file (None when the file
    as a whole is bad); ``field``: dotted path of the offending field (None when not about a field);
    ``reason``: what is wrong; ``line``: 1-based line, for syntax errors.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        reason: str,
        *,
        document: int | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        self.path = str(path)
        # Bounded, whatever a message was built from (a value, a key, a parser's message).
        self.reason = clip(reason, 500)
        self.document = document
        self.field = clip(field) if field else field
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        document = "" if self.document is None else f"document {self.document}"
        line = "" if self.line is None else f"line {self.line}"
        return ": ".join([self.path, *filter(None, (document, line, self.field)), self.reason])


class _FieldError(Exception):
    """A problem at a field path inside one document; becomes a ManifestError with file and index."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# --- public API ---


def load_file(
    path: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    max_bytes: int = safe_yaml.DEFAULT_MAX_BYTES,
) -> list[Upstream]:
    """The upstreams of one manifest file, in document order. Raises ManifestError. With ``root``,
    a file whose resolved path leaves that directory is refused (see ``safe_yaml.read_file``)."""
    return [upstream for _, upstream in load_documents(path, root=root, max_bytes=max_bytes)]


def load_documents(
    path: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    max_bytes: int = safe_yaml.DEFAULT_MAX_BYTES,
    data: bytes | None = None,
) -> list[tuple[int, Upstream]]:
    """(1-based document index, upstream) for every upstream of one manifest file. Raises
    ManifestError. ``root`` and ``max_bytes`` as for ``load_file``; ``data``: the file's bytes, when
    the caller has read them already (within the same limits)."""
    file = Path(path)
    try:
        return _read_documents(file, Path(root) if root is not None else None, max_bytes, data)
    except RecursionError:  # absurdly deep nesting: the parsers recurse per level
        raise ManifestError(file, "nested too deeply to be an Upstream manifest") from None


# One file's upstreams with their document indexes, as ``load_documents`` gives them.
FileDocuments = Sequence[tuple[int, Upstream]]


def merge_files(
    files: Mapping[Path, FileDocuments],
) -> tuple[dict[Path, list[Upstream]], list[tuple[UpstreamKey, ManifestError]]]:
    """The one duplicate policy of a manifest directory, for ``run`` and ``discover`` alike: files in
    name order, the first definition of an upstream wins; a later one is left out and reported as an
    error naming both files (the rest of its file is kept). Returns each file's kept upstreams and
    the duplicates' errors, with the upstream each one is about."""
    kept: dict[Path, list[Upstream]] = {}
    errors: list[tuple[UpstreamKey, ManifestError]] = []
    owners: dict[UpstreamKey, tuple[Path, int]] = {}
    for path in sorted(files):
        kept[path] = []
        for index, upstream in files[path]:
            key = upstream_key(upstream)
            if key in owners:
                first, first_index = owners[key]
                reason = (
                    f"duplicate upstream {upstream_label(key)}: already defined in {first} "
                    f"(document {first_index})"
                )
                errors.append((key, ManifestError(path, reason, document=index, field="metadata.name")))
                continue
            owners[key] = (path, index)
            kept[path].append(upstream)
    return kept, errors


def load_dir(
    directory: str | os.PathLike[str], *, max_bytes: int = safe_yaml.DEFAULT_MAX_BYTES
) -> tuple[dict[str, list[Upstream]], list[ManifestError]]:
    """Load every manifest file of ``directory``: the upstreams of each good file (keyed by path, in
    name order; duplicates left out as ``merge_files`` says) and one error per bad file or
    duplicate. Raises NotADirectoryError."""
    root = Path(directory)
    if not root.is_dir():
        raise NotADirectoryError(f"manifest directory {root} does not exist or is not a directory")
    files: dict[Path, FileDocuments] = {}
    errors: list[ManifestError] = []
    for path in manifest_files(root):
        try:
            files[path] = load_documents(path, root=root, max_bytes=max_bytes)
        except ManifestError as err:
            errors.append(err)
    kept, duplicates = merge_files(files)
    errors.extend(err for _, err in duplicates)
    errors.sort(key=lambda e: (e.path, e.document or 0))
    return {str(path): upstreams for path, upstreams in kept.items()}, errors


def manifest_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The manifest files of ``directory`` in name order (not recursive; dot files skipped)."""
    return sorted(
        p
        for p in Path(directory).iterdir()
        if p.suffix in MANIFEST_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def dump_upstream(upstream: Upstream) -> dict[str, Any]:
    """``upstream`` in manifest form (what ``load_file`` reads back to an equal Upstream)."""
    meta = upstream.metadata
    metadata: dict[str, Any] = {"name": meta.name}
    if meta.namespace:
        metadata["namespace"] = meta.namespace
    if meta.labels:
        metadata["labels"] = dict(sorted(meta.labels.items()))
    if meta.annotations:
        metadata["annotations"] = dict(sorted(meta.annotations.items()))
    if meta.resource_version:
        metadata["resourceVersion"] = meta.resource_version
    resource = Upstream()
    resource.CopyFrom(upstream)
    resource.ClearField("metadata")
    resource.ClearField("status")
    doc: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": _sorted_maps(resource.DESCRIPTOR, json_format.MessageToDict(resource), False),
    }
    if upstream.HasField("status"):
        # solo-kit's CRD status: Go encoding/json of core.Status (snake_case, numeric state).
        status = json_format.MessageToDict(
            upstream.status, preserving_proto_field_name=True, use_integers_for_enums=True
        )
        doc["status"] = _sorted_maps(upstream.status.DESCRIPTOR, status, True)
    return doc


# Well-known types whose JSON is free-form (a Struct's keys come from a map too).
_FREE_JSON = frozenset({"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"})


def _sorted_maps(descriptor: Descriptor, value: Any, proto_names: bool) -> Any:
    """``value`` (json_format.MessageToDict of a ``descriptor`` message) with the keys of every map
    field in sorted order. MessageToDict follows the map's own iteration order, which upb makes
    differ between processes and between two equal maps built in another order: the same Upstream
    would dump differently (a reloaded copy's labelSelector or subresource statuses reordered)."""
    if descriptor.full_name in _FREE_JSON:
        return _sorted_json(value)
    if not isinstance(value, dict):
        return value  # a well-known type written as a scalar (Duration, a wrapper, ...)
    for field in descriptor.fields:
        key = field.name if proto_names else field.json_name
        if field.message_type is not None and key in value:
            value[key] = _sorted_field(field, value[key], proto_names)
    return value


def _sorted_field(field: FieldDescriptor, value: Any, proto_names: bool) -> Any:
    entry = field.message_type
    assert entry is not None  # only message fields are passed
    if entry.GetOptions().map_entry:
        value_type = entry.fields_by_name["value"].message_type
        return {
            key: item if value_type is None else _sorted_maps(value_type, item, proto_names)
            for key, item in sorted(value.items())
        }
    if field.is_repeated:
        return [_sorted_maps(entry, item, proto_names) for item in value]
    return _sorted_maps(entry, value, proto_names)


def _sorted_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted_json(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return [_sorted_json(item) for item in value]
    return value


def dumps(upstreams: Collection[Upstream]) -> str:
    """Upstreams as one multi-document YAML manifest."""
    return yaml.safe_dump_all([dump_upstream(u) for u in upstreams], sort_keys=False)


def decode_text(data: bytes, source: str | os.PathLike[str]) -> str:
    """A manifest's bytes as text (UTF-8, a BOM dropped). Raises ManifestError naming ``source``."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ManifestError(source, f"not UTF-8 text (byte {err.start})") from None


def upstreams_from_document(doc: object, source: str, document: int | None = None) -> list[Upstream]:
    """The Upstream of one parsed manifest document (or each item of a List), validated as in a
    file. Raises ManifestError naming ``source``, ``document`` and the field."""
    try:
        return [upstream for _, upstream in _from_document(doc)]
    except _FieldError as err:
        raise ManifestError(source, err.reason, document=document, field=err.field or None) from None
    except RecursionError:
        raise ManifestError(source, "nested too deeply to be an Upstream manifest") from None


# --- files and documents ---


def _read_documents(
    path: Path, root: Path | None, max_bytes: int, data: bytes | None
) -> list[tuple[int, Upstream]]:
    try:
        data = safe_yaml.read_file(path, root, max_bytes) if data is None else data
    except safe_yaml.LimitError as err:
        raise ManifestError(path, str(err)) from None
    except OSError as err:
        raise ManifestError(path, f"cannot read: {err.strerror or err}") from None
    text = decode_text(data, path)
    documents = _parse_json(path, text) if path.suffix == ".json" else parse_yaml(text, path)
    loaded: list[tuple[int, Upstream]] = []
    seen: dict[UpstreamKey, int] = {}
    for index, doc in documents:
        try:
            upstreams = _from_document(doc)
        except _FieldError as err:
            raise ManifestError(path, err.reason, document=index, field=err.field or None) from None
        for field, upstream in upstreams:
            key = upstream_key(upstream)
            if key in seen:
                reason = f"duplicate upstream {upstream_label(key)}: also in document {seen[key]}"
                raise ManifestError(path, reason, document=index, field=field)
            seen[key] = index
            loaded.append((index, upstream))
    return loaded


class _Loader(safe_yaml.BoundedLoader):
    """SafeLoader that rejects duplicate mapping keys (PyYAML would silently keep the last)."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    first_line: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            earlier = first_line.get(key)
        except TypeError:  # unhashable key: construct_mapping reports it
            break
        if earlier is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {_show_value(key)} (first on line {earlier})", key_node.start_mark
            )
        first_line[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, source: str | os.PathLike[str]) -> list[tuple[int, object]]:
    """The non-empty YAML documents of ``text`` as (1-based index, value), parsed as manifest files
    are; ``source`` (a file, an etcd key) names it in errors. Raises ManifestError."""
    documents: list[tuple[int, object]] = []
    try:
        for doc in yaml.load_all(text, Loader=_Loader):  # a SafeLoader subclass: safe
            documents.append((len(documents) + 1, doc))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "invalid YAML"
        raise ManifestError(
            source,
            f"YAML syntax error: {problem}",
            document=len(documents) + 1,
            line=mark.line + 1 if mark is not None else None,
        ) from None
    except safe_yaml.LimitError as err:
        raise ManifestError(source, str(err), document=len(documents) + 1) from None
    except yaml.YAMLError as err:
        raise ManifestError(source, f"YAML syntax error: {err}", document=len(documents) + 1) from None
    except RecursionError:  # absurdly deep nesting: the parser recurses per level
        raise ManifestError(source, "nested too deeply to be an Upstream manifest") from None
    return [(index, doc) for index, doc in documents if doc is not None]


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {_show_value(key)}")
        result[key] = value
    return result


def _parse_json(path: Path, text: str) -> list[tuple[int, object]]:
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as err:
        raise ManifestError(path, f"JSON syntax error: {err.msg}", line=err.lineno) from None
    except ValueError as err:
        raise ManifestError(path, f"JSON syntax error: {err}") from None
    return [(1, doc)]


def _from_document(doc: object) -> list[tuple[str, Upstream]]:
    """(field path of its name, upstream) for the Upstream, or each item of a List."""
    if not isinstance(doc, dict):
        raise _FieldError(
            "", f"expected a mapping with apiVersion, kind, metadata and spec, got {_kind(doc)}"
        )
    if doc.get("kind") == _LIST_KIND:
        _expect_keys(doc, ("apiVersion", "kind", "items", "metadata"), "")
        _expect_value(doc, "apiVersion", _LIST_API_VERSION, "")
        items = doc.get("items")
        if not isinstance(items, list):
            raise _FieldError("items", f"expected a list, got {_kind(items)}")
        return [(f"items[{i}].metadata.name", _upstream(item, f"items[{i}]")) for i, item in enumerate(items)]
    return [("metadata.name", _upstream(doc, ""))]


def _upstream(doc: object, prefix: str) -> Upstream:
    if not isinstance(doc, dict):
        raise _FieldError(prefix, f"expected a mapping, got {_kind(doc)}")
    _expect_keys(doc, _TOP_LEVEL, prefix)
    _expect_value(doc, "apiVersion", API_VERSION, prefix)
    _expect_value(doc, "kind", KIND, prefix)
    upstream = Upstream()
    spec = doc.get("spec")
    if spec is None:
        raise _FieldError(_join(prefix, "spec"), "required")
    _parse_into(spec, upstream, _join(prefix, "spec"), skip=("metadata", "status"))
    if not upstream.HasField("upstream_spec"):
        raise _FieldError(_join(prefix, "spec.upstreamSpec"), "required")
    if upstream.upstream_spec.WhichOneof("upstream_type") is None:
        types = _members(upstream.upstream_spec.DESCRIPTOR.oneofs_by_name["upstream_type"].fields)
        raise _FieldError(_join(prefix, "spec.upstreamSpec"), f"no upstream type: set one of {types}")
    upstream.metadata.CopyFrom(_metadata(doc.get("metadata"), _join(prefix, "metadata")))
    status = doc.get("status")
    if status is not None:
        upstream.status.SetInParent()  # present even when empty, as Go writes it
        _parse_into(status, upstream.status, _join(prefix, "status"))
    return upstream


def _metadata(value: object, where: str) -> Metadata:
    if value is None:
        raise _FieldError(where, "required")
    if not isinstance(value, dict):
        raise _FieldError(where, f"expected a mapping, got {_kind(value)}")
    _expect_keys(value, (*_METADATA_KEYS, *_SERVER_METADATA_KEYS), where, known=_METADATA_KEYS)
    metadata = Metadata()
    _parse_into({k: value[k] for k in _METADATA_KEYS if k in value}, metadata, where)
    name_at = _join(where, "name")
    if not metadata.name:
        raise _FieldError(name_at, "required")
    if len(metadata.name) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(metadata.name):
        raise _FieldError(
            name_at, f"{_show_value(metadata.name)} is not a valid name (lowercase letters, digits, '-', '.')"
        )
    if not metadata.namespace:
        metadata.namespace = DEFAULT_NAMESPACE
    elif len(metadata.namespace) > 63 or not _DNS1123_LABEL.fullmatch(metadata.namespace):
        reason = (
            f"{_show_value(metadata.namespace)} is not a valid namespace (lowercase letters, digits, '-')"
        )
        raise _FieldError(_join(where, "namespace"), reason)
    return metadata


def _expect_keys(
    doc: dict[Any, Any], allowed: Collection[str], where: str, known: Collection[str] | None = None
) -> None:
    for key in doc:
        if key not in allowed:
            raise _FieldError(
                _join(where, field_name(key)), "unknown field" + _suggest(key, known or allowed)
            )


def _expect_value(doc: dict[Any, Any], key: str, expected: str, where: str) -> None:
    value = doc.get(key)
    if value is None:
        raise _FieldError(_join(where, key), f"required (must be {expected!r})")
    if value != expected:
        raise _FieldError(_join(where, key), f"must be {expected!r}, got {_show_value(value)}")


# --- checking proto3 JSON against a descriptor, for errors that name the field ---


def _parse_into(value: object, message: Message, where: str, skip: Collection[str] = ()) -> None:
    """Check ``value`` field by field (precise errors), then parse it with json_format."""
    _check_message(value, cast(Descriptor, message.DESCRIPTOR), where, skip)
    assert isinstance(value, dict)
    try:
        json_format.ParseDict(value, message, ignore_unknown_fields=False)
    except json_format.ParseError as err:  # not expected after the check; still name the place
        raise _FieldError(where, _clean(str(err))) from None


def _check_message(value: object, descriptor: Descriptor, where: str, skip: Collection[str] = ()) -> None:
    if not isinstance(value, dict):
        raise _FieldError(where, f"expected a mapping, got {_kind(value)}")
    fields = {f.json_name: f for f in descriptor.fields} | dict(descriptor.fields_by_name)
    known = [f.json_name for f in descriptor.fields if f.name not in skip]
    seen: dict[str, str] = {}
    oneofs: dict[str, str] = {}
    for key, item in value.items():
        at = _join(where, field_name(key))
        field = fields.get(key) if isinstance(key, str) else None
        if field is not None and field.name in skip:
            raise _FieldError(at, "not allowed here (it belongs at the top level of the manifest)")
        if field is None:
            raise _FieldError(at, "unknown field" + _suggest(key, known))
        if field.name in seen:
            raise _FieldError(at, f"set twice (also as {seen[field.name]})")
        seen[field.name] = key
        if item is None:  # proto3 JSON: null is the default value
            continue
        oneof = field.containing_oneof
        if oneof is not None:
            if oneof.name in oneofs:
                raise _FieldError(
                    at, f"only one of {_members(oneof.fields)} may be set, {oneofs[oneof.name]} is too"
                )
            oneofs[oneof.name] = key
        _check_field(field, item, at, descriptor)


def _check_field(field: FieldDescriptor, value: object, at: str, parent: Descriptor) -> None:
    name = field.json_name
    if _is_map(field):
        if not isinstance(value, dict):
            raise _FieldError(at, f"expected a mapping, got {_kind(value)}")
        value_field = _message_type(field).fields_by_name["value"]
        for key, item in value.items():
            item_at = _join(at, field_name(key), data=True)
            if not isinstance(key, str):
                raise _FieldError(item_at, f"keys must be strings, got {_kind(key)} (quote it)")
            if item is None:
                raise _FieldError(item_at, "null is not a value")
            _check_value(value_field, item, item_at, parent, _in_map(name, key))
    elif field.is_repeated:
        if not isinstance(value, list):
            raise _FieldError(at, f"expected a list, got {_kind(value)}")
        for i, item in enumerate(value):
            if item is None:
                raise _FieldError(f"{at}[{i}]", "null is not a value")
            _check_value(field, item, f"{at}[{i}]", parent, lambda v: {name: [v]})
    else:
        _check_value(field, value, at, parent, lambda v: {name: v})


def _check_value(
    field: FieldDescriptor,
    value: object,
    at: str,
    parent: Descriptor,
    wrap: _Wrap,
) -> None:
    """One value of ``field`` (a list item or map value for those); ``wrap`` puts it back in a
    ``parent`` JSON object so json_format can judge scalars, enums and well-known types."""
    if field.type == FieldDescriptor.TYPE_MESSAGE and not _is_well_known(field):
        _check_message(value, _message_type(field), at)
        return
    problem = _scalar_problem(field, value)
    if problem:
        raise _FieldError(at, problem)
    try:
        json_format.ParseDict(wrap(value), message_factory.GetMessageClass(parent)())
    except json_format.ParseError as err:
        raise _FieldError(at, _clean(str(err))) from None


# Every integer field type (int32, sint64, fixed32, sfixed64, ...) by the C++ type it maps to.
_INTEGER_TYPES = (
    FieldDescriptor.CPPTYPE_INT32,
    FieldDescriptor.CPPTYPE_INT64,
    FieldDescriptor.CPPTYPE_UINT32,
    FieldDescriptor.CPPTYPE_UINT64,
)


def _in_map(name: str, key: str) -> _Wrap:
    return lambda value: {name: {key: value}}


def _scalar_problem(field: FieldDescriptor, value: object) -> str | None:
    """The mistakes YAML makes easy, in words a user understands (json_format judges the rest)."""
    kind = field.type
    if kind in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES) and not isinstance(value, str):
        return f"expected a string, got {_kind(value)} {_show_value(value)} (quote it)"
    if kind == FieldDescriptor.TYPE_BOOL and not isinstance(value, bool):
        return f"expected true or false, got {_kind(value)} {_show_value(value)}"
    if field.cpp_type in _INTEGER_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return f"expected an integer, got {_kind(value)} {_show_value(value)}"
        if isinstance(value, str) and not re.fullmatch(r"-?[0-9]+", value):  # proto3 JSON allows "8080"
            return f"expected an integer, got {_kind(value)} {_show_value(value)}"
    if kind == FieldDescriptor.TYPE_ENUM:
        enum = field.enum_type
        assert enum is not None
        names = ", ".join(v.name for v in enum.values)
        if isinstance(value, bool) or not isinstance(value, int | str):
            return f"expected one of {names}, got {_kind(value)} {_show_value(value)}"
        known = enum.values_by_name if isinstance(value, str) else enum.values_by_number
        if value not in known:
            return f"unknown value {_show_value(value)}: expected one of {names}"
    # json_format would only say "expected string or bytes-like object".
    is_duration = _is_well_known(field) and _message_type(field).full_name == "google.protobuf.Duration"
    if is_duration and not isinstance(value, str):
        return f'expected a duration such as "1.5s", got {_kind(value)} {_show_value(value)}'
    return None


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and _message_type(field).GetOptions().map_entry


def _is_well_known(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and _message_type(field).full_name.startswith(
        "google.protobuf."
    )


def _message_type(field: FieldDescriptor) -> Descriptor:
    assert field.message_type is not None
    return field.message_type


def _members(fields: Collection[FieldDescriptor]) -> str:
    return ", ".join(f.json_name for f in fields)


def _clean(message: str) -> str:
    """json_format's message without its nesting prefixes and position suffix (the path says where)."""
    message = re.sub(r"^(Failed to parse \w+ field: )+", "", message)
    message = re.sub(r"\s+at [\w.\[\]\"]+\.*$", "", message)
    return message.rstrip(".") or "invalid value"


# --- small helpers ---


def _join(where: str, key: str, data: bool = False) -> str:
    """``where.key``; map keys that are not identifiers (``example.com/x``) as ``where["..."]``."""
    if data and not _IDENTIFIER.fullmatch(key):
        return f"{where}[{json.dumps(key)}]"
    return f"{where}.{key}" if where else key


def _suggest(key: object, known: Collection[str]) -> str:
    name = field_name(key)
    close = difflib.get_close_matches(name, list(known), n=1) if name == key else []
    return f" (did you mean {close[0]}?)" if close else f" (known: {', '.join(known)})"


# How a message names a value's type (bool before int: a bool is an int).
_KINDS = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
    (dict, "a mapping"),
    (list, "a list"),
    (datetime.date, "a date"),
)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return next((name for kind, name in _KINDS if isinstance(value, kind)), f"a {type(value).__name__}")

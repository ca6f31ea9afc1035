"""Every file a translated cluster makes Envoy open must pass the path policy (``gce_plugin.paths``).

A manifest author could otherwise make Envoy read any file on the proxy (``sslConfig.sslFiles``,
SDS ``fileCredentialSource``: a token file sent as a header to an SDS server of their choosing). The
check walks the finished cluster, ``Any``-packed extensions included, so it covers whatever a plugin
or an option put there, not just the fields known today.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from gce_plugin.paths import outside_roots, show

# (message, field) pairs whose value is a path Envoy opens.
FILE_FIELDS = frozenset(
    {
        ("envoy.config.core.v3.DataSource", "filename"),
        ("envoy.config.core.v3.WatchedDirectory", "path"),
        ("envoy.config.core.v3.PathConfigSource", "path"),
        ("envoy.config.core.v3.ConfigSource", "path"),
        ("envoy.extensions.transport_sockets.tls.v3.TlsKeyLog", "path"),
        # Files Envoy writes.
        ("envoy.config.core.v3.HealthCheck", "event_log_path"),
        ("envoy.extensions.health_check.event_sinks.file.v3.HealthCheckEventFileSink", "event_log_path"),
        ("envoy.extensions.access_loggers.file.v3.FileAccessLog", "path"),
    }
)


def check_files(message: Message, roots: Sequence[str]) -> None:
    """Raise ValueError naming the first file field of ``message`` outside ``roots``."""
    for where, path in file_paths(message):
        reason = outside_roots(path, roots)
        if reason is not None:
            raise ValueError(
                f"{where}: Envoy would open {show(path)}, which {reason}; "
                "files must lie under a directory allowed by run --allow-file-root"
            )


def file_paths(message: Message, where: str = "") -> Iterator[tuple[str, str]]:
    """(field path, file path) for every set file field in ``message``, Any contents included."""
    inner = _unpack(message)
    if inner is not None:
        yield from file_paths(inner, where)
        return
    name = message.DESCRIPTOR.full_name
    for field, value in message.ListFields():
        at = f"{where}.{field.name}" if where else field.name
        if (name, field.name) in FILE_FIELDS and isinstance(value, str):
            yield at, value
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            yield from _in_field(field, value, at)


def _in_field(field: FieldDescriptor, value: object, at: str) -> Iterator[tuple[str, str]]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        assert isinstance(value, Mapping)
        items: list[tuple[str, object]] = [(f"{at}[{k!r}]", v) for k, v in value.items()]
    elif field.is_repeated:
        assert isinstance(value, Sequence)
        items = [(f"{at}[{i}]", v) for i, v in enumerate(value)]
    else:
        items = [(at, value)]
    for item_at, item in items:
        if isinstance(item, Message):
            yield from file_paths(item, item_at)


def _unpack(message: Message) -> Message | None:
    """The message inside an ``Any`` (None for other messages). Fails closed: an ``Any`` this
    process cannot read (its type is not linked in) could hide a file, so it is an error."""
    if not isinstance(message, any_pb2.Any):
        return None
    type_name = message.type_url.rpartition("/")[2]
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(type_name)
    except KeyError:
        raise ValueError(
            f"cannot check the files of an extension of unknown type {show(type_name)}"
        ) from None
    inner = message_factory.GetMessageClass(descriptor)()
    if not message.Unpack(inner):
        raise ValueError(f"cannot check the files of a malformed {show(type_name)} extension")
    return inner

"""Descriptor walking for the schema tests: fields as fact-sheet rows, the closure of a message,
and the submessages inside a message instance."""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from tests.schema.gloo_facts import Field

_TYPE_NAMES: dict[int, str] = {
    number: name.removeprefix("TYPE_").lower()
    for name, number in descriptor_pb2.FieldDescriptorProto.Type.items()
}


def message_type(field: FieldDescriptor) -> Descriptor:
    assert field.message_type is not None, field.full_name
    return field.message_type


def enum_type(field: FieldDescriptor) -> EnumDescriptor:
    assert field.enum_type is not None, field.full_name
    return field.enum_type


def is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and message_type(field).GetOptions().map_entry


def type_of(field: FieldDescriptor) -> str:
    """The fact sheet's type column: scalar name, ``.full.Name`` or ``map<key, value>``."""
    if is_map(field):
        entry = message_type(field)
        return f"map<{type_of(entry.fields_by_name['key'])}, {type_of(entry.fields_by_name['value'])}>"
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return "." + message_type(field).full_name
    if field.type == FieldDescriptor.TYPE_ENUM:
        return "." + enum_type(field).full_name
    return _TYPE_NAMES[field.type]


def label_of(field: FieldDescriptor) -> str:
    """The fact sheet's label column: "", "repeated", "map" or "oneof <name>"."""
    if is_map(field):
        return "map"
    if field.is_repeated:
        return "repeated"
    if field.containing_oneof is not None:
        return f"oneof {field.containing_oneof.name}"
    return ""


def describe(field: FieldDescriptor) -> Field:
    """A field as a fact-sheet row."""
    return Field(field.name, field.number, type_of(field), label_of(field), field.json_name)


def rows(message: Descriptor) -> list[Field]:
    return sorted((describe(f) for f in message.fields), key=lambda r: r.number)


def _referenced(message: Descriptor) -> Iterator[FieldDescriptor]:
    """Fields of ``message``, looking through map entries to their value fields."""
    for field in message.fields:
        yield message_type(field).fields_by_name["value"] if is_map(field) else field


def closure(*roots: Descriptor) -> tuple[dict[str, Descriptor], dict[str, EnumDescriptor]]:
    """Every message and enum reachable from ``roots`` (map entries and google.protobuf WKTs left out)."""
    messages: dict[str, Descriptor] = {}
    enums: dict[str, EnumDescriptor] = {}
    todo = list(roots)
    while todo:
        message = todo.pop()
        if message.full_name in messages or message.full_name.startswith("google.protobuf."):
            continue
        messages[message.full_name] = message
        for field in _referenced(message):
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                todo.append(message_type(field))
            elif field.type == FieldDescriptor.TYPE_ENUM:
                enums[enum_type(field).full_name] = enum_type(field)
    return messages, enums


def children(message: Message) -> Iterator[Message]:
    """The submessages set directly inside ``message`` (singular, repeated and map values)."""
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if is_map(field):
            if message_type(field).fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE:
                yield from value.values()
        elif field.is_repeated:
            yield from value
        else:
            yield value


def present(message: Message) -> Iterator[tuple[str, str]]:
    """(message full name, field name) for every field set anywhere inside ``message``, plus
    (full name, "") for every message present (so field-less messages show up too)."""
    yield message.DESCRIPTOR.full_name, ""
    for field, _ in message.ListFields():
        yield message.DESCRIPTOR.full_name, field.name
    for child in children(message):
        yield from present(child)

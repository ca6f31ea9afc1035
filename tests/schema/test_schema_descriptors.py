"""The generated descriptors match Gloo's schema facts (tests/schema/gloo_facts.py), field by field.

What makes binary and JSON encodings interchangeable with Go Gloo is checked exactly: packages,
full message names, field names, numbers, types, labels, oneofs, JSON names, enum values. The Go
codegen options (gogoproto, solo-kit) are checked too, read through the generated extensions.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gce_plugin_gen.github.com.solo_io.solo_kit.api.v1 import solo_kit_pb2
from gce_plugin_gen.gogoproto import gogo_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor, FileDescriptor
from google.protobuf.message import Message

import gce_plugin.api  # noqa: F401 - registers every generated file in the default pool
from gce_plugin.api import Endpoint, Upstream, UpstreamSpec
from tests.schema import gloo_facts as facts
from tests.schema.schema_walk import closure, message_type, rows, type_of

POOL = descriptor_pool.Default()
MESSAGES, ENUMS = closure(Upstream.DESCRIPTOR, Endpoint.DESCRIPTOR)
GCE = "gce.plugins.gloo.solo.io.UpstreamSpec"


def _all_messages(file: FileDescriptor) -> Iterator[Descriptor]:
    def walk(message: Descriptor) -> Iterator[Descriptor]:
        if not message.GetOptions().map_entry:
            yield message
            for nested in message.nested_types:
                yield from walk(nested)

    for message in file.message_types_by_name.values():
        yield from walk(message)


def _file_proto(file: FileDescriptor) -> descriptor_pb2.FileDescriptorProto:
    return descriptor_pb2.FileDescriptorProto.FromString(file.serialized_pb)


def _syntax(file: FileDescriptor) -> str:
    # protoc leaves `syntax` empty for proto2 files.
    return _file_proto(file).syntax or "proto2"


# --- messages, fields, enums ---


def test_closure_is_exactly_the_fact_sheet_messages_and_enums() -> None:
    assert sorted(MESSAGES) == sorted(facts.MESSAGES)
    assert sorted(ENUMS) == sorted(facts.ENUMS | facts.GCE_ENUMS)


@pytest.mark.parametrize("name", sorted(set(facts.MESSAGES) - {"gloo.solo.io.UpstreamSpec", GCE}))
def test_gloo_message_fields_match_fact_sheet(name: str) -> None:
    # Exact equality: a missing field, an extra field, or any difference in a row fails.
    assert rows(POOL.FindMessageTypeByName(name)) == sorted(facts.MESSAGES[name], key=lambda r: r.number)


def test_upstream_spec_is_gloo_fields_plus_gce_11_in_upstream_type() -> None:
    actual = rows(UpstreamSpec.DESCRIPTOR)
    added = {r.number for r in facts.GLOO_UPSTREAM_SPEC_ADDITIONS}
    assert [r for r in actual if r.number not in added] == list(facts.MESSAGES["gloo.solo.io.UpstreamSpec"])
    assert [r for r in actual if r.number in added] == list(facts.GLOO_UPSTREAM_SPEC_ADDITIONS)
    gce = UpstreamSpec.DESCRIPTOR.fields_by_name["gce"]
    assert gce.number == 11
    assert gce.containing_oneof is not None and gce.containing_oneof.name == "upstream_type"
    assert message_type(gce).full_name == GCE
    members = [f.name for f in UpstreamSpec.DESCRIPTOR.oneofs_by_name["upstream_type"].fields]
    expected = facts.MESSAGES["gloo.solo.io.UpstreamSpec"] + facts.GLOO_UPSTREAM_SPEC_ADDITIONS
    assert sorted(members) == sorted(f.name for f in expected if f.label == "oneof upstream_type")
    assert {"aws", "azure", "consul", "gce", "kube", "static"} <= set(members)


def test_gce_spec_keeps_seed_fields_and_adds_4_to_7() -> None:
    actual = rows(POOL.FindMessageTypeByName(GCE))
    assert actual[:3] == list(facts.MESSAGES[GCE])
    assert actual[3:] == list(facts.GCE_ADDITIONS)
    # The mixed-case name is the descriptor name itself, not only the JSON name.
    assert POOL.FindMessageTypeByName(GCE).fields_by_number[3].name == "projectId"


@pytest.mark.parametrize("name", sorted(facts.ENUMS | facts.GCE_ENUMS))
def test_enum_values_match(name: str) -> None:
    expected = (facts.ENUMS | facts.GCE_ENUMS)[name]
    enum = POOL.FindEnumTypeByName(name)
    assert [(v.name, v.number) for v in enum.values] == list(expected)


def test_nested_names_are_really_nested() -> None:
    for name, message in MESSAGES.items():
        parent = message.containing_type
        if parent is not None:
            assert name == f"{parent.full_name}.{message.name}"
        else:
            assert name == f"{message.file.package}.{message.name}"


# --- files ---


@pytest.mark.parametrize("path", sorted(facts.FILES))
def test_file_package_go_package_syntax_and_messages(path: str) -> None:
    fact = facts.FILES[path]
    file = POOL.FindFileByName(path)
    assert file.package == fact.package
    assert _syntax(file) == fact.syntax
    assert file.GetOptions().go_package == fact.go_package
    assert sorted(m.full_name for m in _all_messages(file)) == sorted(fact.messages)
    # Imports: no stray ones; every closure file Gloo imports is imported here too (Gloo also has
    # unused WKT imports and imports of out-of-scope files, which have no wire or JSON effect).
    deps = {d.name for d in file.dependencies}
    assert deps - {facts.GOGO} - _added_type_files() <= set(fact.imports)
    assert {i for i in fact.imports if i in facts.FILES} <= deps


def _added_type_files() -> set[str]:
    """The files of the project's upstream types (plugins.proto imports them)."""
    return {POOL.FindMessageTypeByName(f.type[1:]).file.name for f in facts.GLOO_UPSTREAM_SPEC_ADDITIONS}


def test_every_closure_message_lives_in_its_fact_sheet_file() -> None:
    where = {m: path for path, fact in facts.FILES.items() for m in fact.messages}
    for name, message in MESSAGES.items():
        assert message.file.name == where[name]


def test_serialized_descriptors_agree_on_labels_and_type_names() -> None:
    """The FileDescriptorProto protoc embedded in gen/ (what other tools see) says the same thing."""
    for path in facts.FILES:
        proto = _file_proto(POOL.FindFileByName(path))

        def check(message: descriptor_pb2.DescriptorProto, prefix: str) -> None:
            full = f"{prefix}.{message.name}"
            if message.options.map_entry:
                return
            expected = {r.number: r for r in facts.MESSAGES.get(full, ())}
            expected |= {r.number: r for r in _additions(full)}
            for field in message.field:
                row = expected[field.number]
                assert field.name == row.name
                assert not field.HasField("json_name") or field.json_name == row.json
                assert not field.proto3_optional
                label = descriptor_pb2.FieldDescriptorProto
                repeated = row.label in ("repeated", "map")
                want = label.LABEL_REPEATED if repeated else label.LABEL_OPTIONAL
                assert field.label == want, (full, field.name)
                if row.type.startswith("."):
                    assert field.type_name == row.type
                elif row.label == "map":
                    assert field.type_name == f".{full}.{_entry_name(field.name)}"
                oneof = row.label.removeprefix("oneof ") if row.label.startswith("oneof ") else None
                if oneof is None:
                    assert not field.HasField("oneof_index")
                else:
                    assert message.oneof_decl[field.oneof_index].name == oneof
            for nested in message.nested_type:
                check(nested, full)

        for message in proto.message_type:
            check(message, proto.package)


def _additions(full_name: str) -> tuple[facts.Field, ...]:
    if full_name == "gloo.solo.io.UpstreamSpec":
        return facts.GLOO_UPSTREAM_SPEC_ADDITIONS
    if full_name == GCE:
        return facts.GCE_ADDITIONS
    if full_name == "core.solo.io.Resource":
        return facts.RESOURCE_MESSAGE
    return ()


def _entry_name(field_name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in field_name.split("_")) + "Entry"


# --- options ---


def _option_values(options: Message) -> dict[str, object]:
    return {field.name: value for field, value in options.ListFields()}


@pytest.mark.parametrize("path", sorted(facts.FILES))
def test_file_option_equal_all(path: str) -> None:
    options = POOL.FindFileByName(path).GetOptions()
    if facts.FILES[path].equal_all:
        assert options.HasExtension(gogo_pb2.equal_all)
        assert options.Extensions[gogo_pb2.equal_all] is True
    else:
        assert not options.HasExtension(gogo_pb2.equal_all)
    # Nothing else: go_package plus (maybe) equal_all.
    assert set(_option_values(options)) <= {"go_package", "equal_all"}


def test_resource_options_on_upstream_and_endpoint() -> None:
    resource = solo_kit_pb2.resource
    up = Upstream.DESCRIPTOR.GetOptions().Extensions[resource]
    ep = Endpoint.DESCRIPTOR.GetOptions().Extensions[resource]
    assert (up.short_name, up.plural_name) == ("us", "upstreams")
    assert (ep.short_name, ep.plural_name) == ("ep", "endpoints")
    assert not up.cluster_scoped and not ep.cluster_scoped


def test_resource_ref_goproto_options() -> None:
    options = POOL.FindMessageTypeByName("core.solo.io.ResourceRef").GetOptions()
    for ext in (gogo_pb2.goproto_sizecache, gogo_pb2.goproto_unkeyed, gogo_pb2.goproto_unrecognized):
        assert options.HasExtension(ext)
        assert options.Extensions[ext] is False


def test_message_options_are_exactly_the_fact_sheet_ones() -> None:
    for name, message in MESSAGES.items():
        values = _option_values(message.GetOptions())
        if "resource" in values:
            resource = values["resource"]
            assert isinstance(resource, solo_kit_pb2.Resource)
            values["resource"] = _option_values(resource)
        assert values == facts.MESSAGE_OPTIONS.get(name, {}), name


def test_field_options_are_exactly_the_fact_sheet_ones() -> None:
    for name, message in MESSAGES.items():
        for field in message.fields:
            assert _option_values(field.GetOptions()) == facts.FIELD_OPTIONS.get((name, field.name), {}), (
                name,
                field.name,
            )


def test_field_options_read_through_generated_extensions() -> None:
    status = Upstream.DESCRIPTOR.fields_by_name["status"].GetOptions()
    assert status.Extensions[gogo_pb2.nullable] is False
    assert status.Extensions[gogo_pb2.moretags] == 'testdiff:"ignore"'
    for message, field in [
        ("gloo.solo.io.Upstream", "metadata"),
        ("gloo.solo.io.Endpoint", "metadata"),
        ("aws.plugins.gloo.solo.io.UpstreamSpec", "secret_ref"),
        ("azure.plugins.gloo.solo.io.UpstreamSpec", "secret_ref"),
    ]:
        options = POOL.FindMessageTypeByName(message).fields_by_name[field].GetOptions()
        assert options.HasExtension(gogo_pb2.nullable) and options.Extensions[gogo_pb2.nullable] is False
    for message, field in [
        ("gloo.solo.io.LoadBalancerConfig", "update_merge_window"),
        ("gloo.solo.io.ConnectionConfig", "connect_timeout"),
        ("gloo.solo.io.ConnectionConfig.TcpKeepAlive", "keepalive_time"),
        ("gloo.solo.io.ConnectionConfig.TcpKeepAlive", "keepalive_interval"),
    ]:
        options = POOL.FindMessageTypeByName(message).fields_by_name[field].GetOptions()
        assert options.Extensions[gogo_pb2.stdduration] is True
    rv = POOL.FindMessageTypeByName("core.solo.io.Metadata").fields_by_name["resource_version"].GetOptions()
    assert rv.Extensions[gogo_pb2.moretags] == 'testdiff:"ignore"'


# --- extension declarations ---


@pytest.mark.parametrize("name", sorted(facts.EXTENSIONS))
def test_extension_numbers(name: str) -> None:
    full_name, extendee, number, type_ = facts.EXTENSIONS[name]
    module = solo_kit_pb2 if full_name.startswith("core.solo.io.") else gogo_pb2
    ext = module.DESCRIPTOR.extensions_by_name[name]
    assert ext.full_name == full_name
    assert ext.containing_type.full_name == extendee
    assert ext.number == number
    assert type_of(ext) == type_
    assert getattr(module, name) is ext


def test_gogo_file_and_resource_message() -> None:
    gogo = POOL.FindFileByName(facts.GOGO)
    assert gogo.package == facts.GOGO_FILE.package
    assert gogo.GetOptions().go_package == facts.GOGO_FILE.go_package
    assert _syntax(gogo) == facts.GOGO_FILE.syntax
    assert rows(solo_kit_pb2.Resource.DESCRIPTOR) == list(facts.RESOURCE_MESSAGE)


def test_declaration_order_follows_gloo() -> None:
    # No wire or JSON effect, but kept as Gloo declares them (fact sheet "Schema subtleties").
    spec_fields = [f.name for f in UpstreamSpec.DESCRIPTOR.fields]
    oneof = [name for name in spec_fields if name in ("kube", "static", "aws", "azure", "consul")]
    assert oneof == ["kube", "static", "aws", "azure", "consul"]
    metadata = [f.name for f in POOL.FindMessageTypeByName("core.solo.io.Metadata").fields]
    assert metadata == ["name", "namespace", "cluster", "resource_version", "labels", "annotations"]

"""Bad manifest files fail with an error naming the file, the document and the field."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import NamedTuple

import pytest

from gce_plugin import manifests

GOOD = """\
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata: {name: good, namespace: default}
spec:
  upstreamSpec:
    gce: {instanceGroupName: web, instanceGroupRegion: us-central1-a, projectId: demo-project}
"""

HEAD = """\
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata: {name: web}
"""


class Case(NamedTuple):
    text: str  # the bad document, placed second in the file after GOOD
    field: str | None
    reason: str  # a substring of the reason
    line: int | None = None  # for syntax errors: line in the whole file


def spec(gce: str, extra: str = "") -> str:
    return HEAD + f"spec:\n  upstreamSpec:\n    gce: {gce}\n{extra}"


CASES: dict[str, Case] = {
    "unknown field": Case(
        spec("{instanceGroupNam: web}"),
        "spec.upstreamSpec.gce.instanceGroupNam",
        "unknown field (did you mean instanceGroupName?)",
    ),
    "unknown top-level field": Case(GOOD.replace("spec:", "specs:"), "specs", "unknown field"),
    "unknown metadata field": Case(
        GOOD.replace("namespace: default", "namespace: default, cluster: east"),
        "metadata.cluster",
        "unknown field",
    ),
    "unknown field inside spec": Case(
        HEAD + "spec: {upstreamSpec: {gce: {}}, upstreams: []}", "spec.upstreams", "unknown field"
    ),
    "metadata inside spec": Case(
        HEAD + "spec: {metadata: {name: x}, upstreamSpec: {gce: {}}}",
        "spec.metadata",
        "belongs at the top level",
    ),
    "wrong type: string for integer": Case(
        spec("{port: eighty}"), "spec.upstreamSpec.gce.port", "expected an integer"
    ),
    "wrong type: integer for string": Case(
        spec("{projectId: 12345}"), "spec.upstreamSpec.gce.projectId", "expected a string"
    ),
    "wrong type: mapping for string": Case(
        spec("{portName: {a: b}}"), "spec.upstreamSpec.gce.portName", "expected a string"
    ),
    "wrong type: list for message": Case(
        spec("[]"), "spec.upstreamSpec.gce", "expected a mapping, got a list"
    ),
    "wrong type: string for bool": Case(
        spec("{}", "    useHttp2: sure\n"), "spec.upstreamSpec.useHttp2", "expected true or false"
    ),
    "wrong type: map value": Case(
        spec("{labelSelector: {env: 1}}"), "spec.upstreamSpec.gce.labelSelector.env", "expected a string"
    ),
    "wrong type: list item": Case(
        HEAD + "spec: {upstreamSpec: {static: {hosts: [{addr: a, port: 80}, {addr: b, port: x}]}}}",
        "spec.upstreamSpec.static.hosts[1].port",
        "expected an integer",
    ),
    "out of range": Case(spec("{port: -1}"), "spec.upstreamSpec.gce.port", "out of range"),
    "bad duration": Case(
        spec("{}", "    connectionConfig: {connectTimeout: 5}\n"),
        "spec.upstreamSpec.connectionConfig.connectTimeout",
        "expected a duration",
    ),
    "bad duration string": Case(
        spec("{}", "    connectionConfig: {connectTimeout: 5m}\n"),
        "spec.upstreamSpec.connectionConfig.connectTimeout",
        'Duration must end with letter "s"',
    ),
    "bad enum": Case(
        spec("{addressType: PUBLIC}"),
        "spec.upstreamSpec.gce.addressType",
        "unknown value 'PUBLIC': expected one of INTERNAL, EXTERNAL",
    ),
    "bad enum number": Case(
        GOOD + "status: {state: 7}\n",
        "status.state",
        "unknown value 7: expected one of Pending, Accepted, Rejected",
    ),
    "two upstream types": Case(
        HEAD + "spec: {upstreamSpec: {gce: {}, static: {}}}", "spec.upstreamSpec.static", "only one of"
    ),
    "no upstream type": Case(HEAD + "spec: {upstreamSpec: {gce: }}", "spec.upstreamSpec", "no upstream type"),
    "no upstreamSpec": Case(HEAD + "spec: {}", "spec.upstreamSpec", "required"),
    "no spec": Case(HEAD, "spec", "required"),
    "both spellings": Case(
        spec("{instanceGroupName: a, instance_group_name: b}"),
        "spec.upstreamSpec.gce.instance_group_name",
        "set twice (also as instanceGroupName)",
    ),
    "wrong kind": Case(GOOD.replace("kind: Upstream", "kind: VirtualService"), "kind", "must be 'Upstream'"),
    "missing kind": Case(GOOD.replace("kind: Upstream\n", ""), "kind", "required"),
    "wrong apiVersion": Case(
        GOOD.replace("gloo.solo.io/v1", "gloo.solo.io/v2"), "apiVersion", "must be 'gloo.solo.io/v1'"
    ),
    "missing name": Case(GOOD.replace("name: good, ", ""), "metadata.name", "required"),
    "empty name": Case(GOOD.replace("name: good", 'name: ""'), "metadata.name", "required"),
    "missing metadata": Case(
        GOOD.replace("metadata: {name: good, namespace: default}\n", ""), "metadata", "required"
    ),
    "invalid name": Case(GOOD.replace("name: good", "name: Good_1"), "metadata.name", "not a valid name"),
    "invalid namespace": Case(
        GOOD.replace("namespace: default", "namespace: a.b"), "metadata.namespace", "not a valid"
    ),
    "duplicate name in the file": Case(
        GOOD.replace("instanceGroupName: web", "instanceGroupName: other"),
        "metadata.name",
        "duplicate upstream default.good: also in document 1",
    ),
    "not a mapping": Case("- just\n- a list\n", None, "expected a mapping"),
    # Lines count in the whole file: GOOD is lines 1-6, "---" line 7, HEAD lines 8-10.
    "YAML syntax error": Case(
        HEAD + "spec:\n  upstreamSpec: gce: {}\n", None, "mapping values are not allowed here", line=12
    ),
    "YAML unclosed brace": Case(
        HEAD + "spec:\n  upstreamSpec: {gce: {a: b}\n",
        None,
        "YAML syntax error: expected ',' or '}'",
        line=13,
    ),
    "YAML duplicate key": Case(
        HEAD + "spec: {upstreamSpec: {gce: {}}}\nspec: {}\n",
        None,
        "duplicate key 'spec' (first on line 11)",
        line=12,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_document_is_named_with_its_field(tmp_path: Path, case: Case) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD + "---\n" + textwrap.dedent(case.text))
    with pytest.raises(manifests.ManifestError) as caught:
        manifests.load_file(path)
    err = caught.value
    assert err.path == str(path)
    assert err.document == 2
    assert err.field == case.field
    assert case.reason in err.reason
    assert err.line == case.line
    message = str(err)
    assert message.startswith(f"{path}: document 2: ")
    if case.field:
        assert f": {case.field}: " in message
    if case.line:
        assert f": line {case.line}: " in message
    assert message.endswith(err.reason)
    assert isinstance(err, ValueError)


def test_exact_message_format(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD + "---\n" + spec("{instanceGroupNam: web}"))
    with pytest.raises(manifests.ManifestError) as caught:
        manifests.load_file(path)
    assert str(caught.value) == (
        f"{path}: document 2: spec.upstreamSpec.gce.instanceGroupNam: "
        "unknown field (did you mean instanceGroupName?)"
    )


def test_error_in_a_list_item_names_the_item(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    item = textwrap.indent(spec("{port: x}"), "  ").replace("  apiVersion", "- apiVersion", 1)
    path.write_text("apiVersion: v1\nkind: List\nitems:\n" + item)
    with pytest.raises(manifests.ManifestError) as caught:
        manifests.load_file(path)
    assert (caught.value.document, caught.value.field) == (1, "items[0].spec.upstreamSpec.gce.port")


def test_map_keys_that_are_not_identifiers_are_quoted(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        GOOD.replace("namespace: default}", "namespace: default, annotations: {example.com/a: 1}}")
    )
    with pytest.raises(manifests.ManifestError) as caught:
        manifests.load_file(path)
    assert caught.value.field == 'metadata.annotations["example.com/a"]'


def test_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "apiVersion": "gloo.solo.io/v1",\n  "kind": "Upstream",\n}\n')
    with pytest.raises(manifests.ManifestError) as caught:
        manifests.load_file(path)
    assert caught.value.line == 4
    assert str(caught.value).startswith(f"{path}: line 4: JSON syntax error")


def test_json_unknown_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        '{"apiVersion": "gloo.solo.io/v1", "kind": "Upstream", "metadata": {"name": "web"},'
        ' "spec": {"upstreamSpec": {"gce": {"zone": "a"}}}}'
    )
    with pytest.raises(manifests.ManifestError) as caught:
        manifests.load_file(path)
    assert (caught.value.document, caught.value.field) == (1, "spec.upstreamSpec.gce.zone")


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(manifests.ManifestError) as caught:
        manifests.load_file(tmp_path / "nope.yaml")
    assert caught.value.path == str(tmp_path / "nope.yaml")
    assert "cannot read" in caught.value.reason
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(manifests.ManifestError, match="not UTF-8"):
        manifests.load_file(binary)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_absurdly_deep_nesting_is_a_manifest_error(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"deep{suffix}"
    path.write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(manifests.ManifestError, match="nested too deeply") as raised:
        manifests.load_file(path)
    assert raised.value.path == str(path)

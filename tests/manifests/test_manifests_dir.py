"""load_dir: per-file upstreams of the good files, one error per bad file, duplicates across files."""

from __future__ import annotations

from pathlib import Path

import pytest

from gce_plugin import manifests
from gce_plugin.manifest_watch import ManifestDirectory


def manifest(name: str, namespace: str | None = "default", group: str = "web") -> str:
    ns = f", namespace: {namespace}" if namespace else ""
    return (
        "apiVersion: gloo.solo.io/v1\nkind: Upstream\n"
        f"metadata: {{name: {name}{ns}}}\n"
        "spec:\n  upstreamSpec:\n"
        f"    gce: {{instanceGroupName: {group}, instanceGroupRegion: us-central1-a, projectId: demo}}\n"
    )


def test_good_and_bad_files(tmp_path: Path) -> None:
    (tmp_path / "b-web.yaml").write_text(manifest("web") + "---\n" + manifest("web-canary"))
    (tmp_path / "a-api.yml").write_text(manifest("api"))
    (tmp_path / "c-bad.yaml").write_text(manifest("bad").replace("instanceGroupName", "instanceGroupNam"))
    (tmp_path / "d-broken.json").write_text("{")
    (tmp_path / "README.md").write_text("not a manifest")
    (tmp_path / ".hidden.yaml").write_text("garbage: [")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "nested.yaml").write_text(manifest("nested"))

    results, errors = manifests.load_dir(tmp_path)

    assert list(results) == [str(tmp_path / "a-api.yml"), str(tmp_path / "b-web.yaml")]
    assert [u.metadata.name for u in results[str(tmp_path / "b-web.yaml")]] == ["web", "web-canary"]
    assert [u.metadata.name for u in results[str(tmp_path / "a-api.yml")]] == ["api"]
    assert [(e.path, e.document, e.field) for e in errors] == [
        (str(tmp_path / "c-bad.yaml"), 1, "spec.upstreamSpec.gce.instanceGroupNam"),
        (str(tmp_path / "d-broken.json"), None, None),
    ]
    assert "unknown field" in errors[0].reason
    assert "JSON syntax error" in errors[1].reason


def test_duplicate_across_files_names_both_files(tmp_path: Path) -> None:
    first, second = tmp_path / "10-web.yaml", tmp_path / "20-more.yaml"
    first.write_text(manifest("api") + "---\n" + manifest("web"))
    # Same (namespace, name) once the default namespace is applied.
    second.write_text(manifest("other") + "---\n" + manifest("web", namespace=None, group="web2"))

    results, errors = manifests.load_dir(tmp_path)

    # The first definition wins; the rest of the later file is kept.
    assert list(results) == [str(first), str(second)]
    assert [u.metadata.name for u in results[str(second)]] == ["other"]
    [err] = errors
    assert (err.path, err.document, err.field) == (str(second), 2, "metadata.name")
    assert str(first) in str(err) and str(second) in str(err)
    assert str(err) == (
        f"{second}: document 2: metadata.name: "
        f"duplicate upstream default.web: already defined in {first} (document 2)"
    )


def test_same_name_in_other_namespaces_is_fine(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(manifest("web", namespace="team-a"))
    (tmp_path / "b.yaml").write_text(manifest("web", namespace="team-b"))
    results, errors = manifests.load_dir(tmp_path)
    assert errors == []
    assert sorted(u.metadata.namespace for us in results.values() for u in us) == ["team-a", "team-b"]


def test_empty_directory_and_missing_directory(tmp_path: Path) -> None:
    assert manifests.load_dir(tmp_path) == ({}, [])
    with pytest.raises(NotADirectoryError):
        manifests.load_dir(tmp_path / "missing")


def test_run_and_discover_share_one_duplicate_policy(tmp_path: Path) -> None:
    """a.yaml defines web; b.yaml defines web and api: both commands serve a.yaml's web and b.yaml's
    api, and report b.yaml's web naming both files."""
    (tmp_path / "a.yaml").write_text(manifest("web", group="from-a"))
    (tmp_path / "b.yaml").write_text(manifest("web", group="from-b") + "---\n" + manifest("api"))
    results, errors = manifests.load_dir(tmp_path)  # discover
    watched = ManifestDirectory(tmp_path)  # run
    watched.scan()
    loaded = sorted((u for us in results.values() for u in us), key=lambda u: u.metadata.name)
    assert loaded == watched.upstreams()
    assert [(u.metadata.name, u.upstream_spec.gce.instance_group_name) for u in loaded] == [
        ("api", "web"),
        ("web", "from-a"),
    ]
    [err] = errors
    assert str(err) == watched.errors[tmp_path / "b.yaml"]
    assert str(tmp_path / "a.yaml") in str(err) and str(tmp_path / "b.yaml") in str(err)
    assert {k: [str(e) for e in v] for k, v in watched.duplicates.items()} == {("default", "web"): [str(err)]}

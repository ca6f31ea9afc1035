"""The manifest directory source: additions, edits, deletions, broken files keep their last good
upstreams, and duplicates across files are reported with the first file winning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gce_plugin import safe_yaml
from gce_plugin.manifest_watch import ManifestDirectory

UPSTREAM = """\
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata: {{name: {name}, namespace: default}}
spec:
  upstreamSpec:
    gce: {{instanceGroupName: {group}, instanceGroupRegion: us-central1-a, projectId: p}}
"""


def write(path: Path, name: str, group: str = "g") -> None:
    path.write_text(UPSTREAM.format(name=name, group=group))


def names(source: ManifestDirectory) -> list[str]:
    return [u.metadata.name for u in source.upstreams()]


def test_add_change_delete(tmp_path: Path) -> None:
    source = ManifestDirectory(tmp_path)
    assert source.scan() is False and names(source) == []
    write(tmp_path / "a.yaml", "a")
    assert source.scan() is True and names(source) == ["a"]
    assert source.scan() is False  # nothing changed on disk
    write(tmp_path / "a.yaml", "a", group="other")
    assert source.scan() is True
    assert source.upstreams()[0].upstream_spec.gce.instance_group_name == "other"
    (tmp_path / "a.yaml").unlink()
    assert source.scan() is True and names(source) == []


def test_broken_file_keeps_last_good_version_and_reports_file_document_field(tmp_path: Path) -> None:
    source = ManifestDirectory(tmp_path)
    write(tmp_path / "a.yaml", "a")
    write(tmp_path / "b.yaml", "b")
    source.scan()
    (tmp_path / "a.yaml").write_text(UPSTREAM.format(name="a", group="g").replace("projectId", "projectID"))
    assert source.scan() is False
    assert names(source) == ["a", "b"]
    error = source.errors[tmp_path / "a.yaml"]
    assert "a.yaml" in error and "document 1" in error and "projectID" in error
    # Fixed: the error goes away and the new content is served.
    write(tmp_path / "a.yaml", "a", group="fixed")
    assert source.scan() is True and source.errors == {}
    assert source.upstreams()[0].upstream_spec.gce.instance_group_name == "fixed"


def test_a_file_that_never_loaded_contributes_nothing(tmp_path: Path) -> None:
    source = ManifestDirectory(tmp_path)
    (tmp_path / "bad.yaml").write_text("kind: Upstream\nspec: [\n")
    source.scan()
    assert names(source) == [] and "bad.yaml" in source.errors[tmp_path / "bad.yaml"]


def test_duplicate_upstream_across_files_first_file_wins(tmp_path: Path) -> None:
    source = ManifestDirectory(tmp_path)
    write(tmp_path / "a.yaml", "same", group="from-a")
    write(tmp_path / "b.yaml", "same", group="from-b")
    source.scan()
    assert [u.upstream_spec.gce.instance_group_name for u in source.upstreams()] == ["from-a"]
    assert "already defined in" in source.errors[tmp_path / "b.yaml"]


def test_a_file_that_breaks_the_loader_keeps_the_others(tmp_path: Path) -> None:
    source = ManifestDirectory(tmp_path)
    write(tmp_path / "a.yaml", "a")
    source.scan()
    (tmp_path / "b.yaml").write_text("[" * 5000 + "]" * 5000)
    source.scan()
    assert names(source) == ["a"]
    assert "b.yaml" in source.errors[tmp_path / "b.yaml"]


def test_a_changed_file_is_read_once_and_loaded_as_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Path] = []
    real_read = safe_yaml.read_file

    def counting_read(path: Path, *args: Any) -> bytes:
        reads.append(path)
        return real_read(path, *args)

    monkeypatch.setattr(safe_yaml, "read_file", counting_read)
    source = ManifestDirectory(tmp_path)
    write(tmp_path / "a.yaml", "a")
    assert source.scan() is True and names(source) == ["a"]
    write(tmp_path / "a.yaml", "a", group="other")
    assert source.scan() is True
    assert source.upstreams()[0].upstream_spec.gce.instance_group_name == "other"
    assert reads == [tmp_path / "a.yaml"] * 2  # once per change: the digest's bytes are the ones loaded

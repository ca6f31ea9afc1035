"""Settled manifest changes and last good manifests across restarts (issue 8, items 1 and 2), on the
manifest directory source with a fake clock: a change is applied once stable for the settle
interval, a removal once it has persisted that long, a mass removal after a second read; a file
broken at start-up is served from the state directory, corrupt state is ignored loudly."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from gce_plugin import metrics
from gce_plugin.last_good import UpstreamArchive
from gce_plugin.manifest_watch import ManifestDirectory
from gce_plugin.state import StateStore
from tests.controlplane.test_manifest_watch import UPSTREAM, names, write

SETTLE = 2.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def source_of(path: Path, clock: Clock, store: StateStore | None = None) -> ManifestDirectory:
    archive = UpstreamArchive(store) if store is not None else None
    return ManifestDirectory(path, settle=SETTLE, archive=archive, clock=clock)


def groups(source: ManifestDirectory) -> list[str]:
    return [u.upstream_spec.gce.instance_group_name for u in source.upstreams()]


def test_a_file_written_in_two_halves_is_applied_only_once_stable(tmp_path: Path) -> None:
    clock = Clock()
    write(tmp_path / "a.yaml", "a", group="old")
    source = source_of(tmp_path, clock)
    assert source.scan() is True and groups(source) == ["old"]  # start-up: at once
    text = UPSTREAM.format(name="a", group="new")
    (tmp_path / "a.yaml").write_text(text[: len(text) // 2])  # kubectl get -o yaml > file, half done
    assert source.scan() is False and source.errors == {}  # not read as broken, not applied
    clock.advance(1.0)
    (tmp_path / "a.yaml").write_text(text)  # the second half
    assert source.scan() is False and groups(source) == ["old"]
    clock.advance(1.0)
    assert source.scan() is False  # stable for 1 s only
    clock.advance(1.1)
    assert source.scan() is True and groups(source) == ["new"] and source.errors == {}


def test_a_truncated_then_rewritten_file_never_loses_its_upstreams(tmp_path: Path) -> None:
    clock = Clock()
    write(tmp_path / "a.yaml", "a")
    write(tmp_path / "b.yaml", "b")
    source = source_of(tmp_path, clock)
    source.scan()
    (tmp_path / "a.yaml").write_text("")  # truncated: an emptied file
    for _ in range(3):
        clock.advance(0.5)
        assert source.scan() is False and names(source) == ["a", "b"]
    write(tmp_path / "a.yaml", "a")  # rewritten with the same content
    clock.advance(5)
    assert source.scan() is False and names(source) == ["a", "b"]


def test_an_emptied_file_removes_its_upstreams_once_the_emptiness_persisted(tmp_path: Path) -> None:
    clock = Clock()
    for name in "abc":
        write(tmp_path / f"{name}.yaml", name)
    source = source_of(tmp_path, clock)
    source.scan()
    (tmp_path / "a.yaml").write_text("")
    assert source.scan() is False
    clock.advance(SETTLE)
    assert source.scan() is True and names(source) == ["b", "c"]


def test_a_removed_and_recreated_directory_keeps_the_upstreams_until_the_files_are_back(
    tmp_path: Path,
) -> None:
    clock = Clock()
    config = tmp_path / "config"
    config.mkdir()
    write(config / "a.yaml", "a")
    write(config / "b.yaml", "b")
    source = source_of(config, clock)
    source.scan()
    shutil.rmtree(config)
    with pytest.raises(FileNotFoundError):
        source.scan()
    config.mkdir()  # recreated empty, the files copied back a moment later
    clock.advance(0.5)
    assert source.scan() is False and names(source) == ["a", "b"]
    clock.advance(1.0)
    write(config / "a.yaml", "a")
    write(config / "b.yaml", "b")
    assert source.scan() is False and names(source) == ["a", "b"]
    clock.advance(10)
    assert source.scan() is False and names(source) == ["a", "b"]


def test_a_single_removal_lands_after_the_interval_a_mass_removal_after_a_second_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    for name in "abcd":
        write(tmp_path / f"{name}.yaml", name)
    source = source_of(tmp_path, clock)
    source.scan()
    (tmp_path / "a.yaml").unlink()
    assert source.scan() is False and names(source) == ["a", "b", "c", "d"]
    clock.advance(SETTLE)
    assert source.scan() is True and names(source) == ["b", "c", "d"]
    # Three of three at once: more than half. Absent for the interval, then read the same again.
    for name in "bcd":
        (tmp_path / f"{name}.yaml").unlink()
    assert source.scan() is False
    clock.advance(SETTLE)
    with caplog.at_level(logging.WARNING):
        assert source.scan() is False and names(source) == ["b", "c", "d"]
    assert "removes 3 of 3 upstreams" in caplog.text
    clock.advance(SETTLE / 2)
    assert source.scan() is False and names(source) == ["b", "c", "d"]
    clock.advance(SETTLE / 2)
    assert source.scan() is True and names(source) == []


def test_a_mass_removal_that_reverts_is_never_applied(tmp_path: Path) -> None:
    clock = Clock()
    for name in "ab":
        write(tmp_path / f"{name}.yaml", name)
    source = source_of(tmp_path, clock)
    source.scan()
    for name in "ab":
        (tmp_path / f"{name}.yaml").write_text("")
    clock.advance(SETTLE)
    source.scan()
    clock.advance(SETTLE / 2)
    for name in "ab":
        write(tmp_path / f"{name}.yaml", name)
    clock.advance(SETTLE * 3)
    source.scan()
    source.scan()
    assert names(source) == ["a", "b"]


def test_a_file_broken_at_start_up_is_served_from_its_saved_version_reported_stale(tmp_path: Path) -> None:
    config, state = tmp_path / "config", tmp_path / "state"
    config.mkdir()
    write(config / "a.yaml", "a", group="saved")
    write(config / "b.yaml", "b")
    store = StateStore(state)
    source_of(config, Clock(), store).scan()
    store.flush()  # (the writer thread's work, now)
    # Restart with a tab in the file: served from the state directory, reported stale.
    (config / "a.yaml").write_text(
        UPSTREAM.format(name="a", group="new").replace("  upstreamSpec", "\tupstreamSpec")
    )
    restarted = source_of(config, Clock(), StateStore(state))
    restarted.scan()
    assert names(restarted) == ["a", "b"] and groups(restarted)[0] == "saved"
    assert config / "a.yaml" in restarted.stale
    assert "stale" in restarted.errors[config / "a.yaml"]
    assert restarted.sources[("default", "a")] == config / "a.yaml"
    # Fixed: loaded from disk, no longer stale.
    clock = Clock()
    fixed = source_of(config, clock, StateStore(state))
    write(config / "a.yaml", "a", group="fixed")
    fixed.scan()
    assert groups(fixed)[0] == "fixed" and fixed.stale == {} and fixed.errors == {}


def test_corrupt_state_is_ignored_with_a_loud_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config, state = tmp_path / "config", tmp_path / "state"
    config.mkdir()
    write(config / "a.yaml", "a")
    store = StateStore(state)
    source_of(config, Clock(), store).scan()
    store.flush()
    (records,) = list((state / "manifest").glob("*.rec"))
    records.write_bytes(records.read_bytes().replace(b"saved", b"SAVED") + b"x")
    before = (
        metrics.REGISTRY.get_sample_value("gce_plugin_state_corrupt_records_total", {"kind": "manifest"}) or 0
    )
    (config / "a.yaml").write_text("kind: Upstream\nspec: [\n")
    with caplog.at_level(logging.ERROR):
        restarted = source_of(config, Clock(), StateStore(state))
        restarted.scan()
    assert names(restarted) == [] and restarted.stale == {}
    assert "CORRUPT STATE RECORD IGNORED" in caplog.text and "checksum mismatch" in caplog.text
    after = metrics.REGISTRY.get_sample_value("gce_plugin_state_corrupt_records_total", {"kind": "manifest"})
    assert after == before + 1

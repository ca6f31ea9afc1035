"""Both log formats carry every context field; every command that logs takes --log-format."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from gce_plugin import cli, logs
from gce_plugin.manifest_watch import ManifestDirectory

BROKEN = (
    "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: web}\n"
    "spec: {upstreamSpec: {gce: {bogus: 1}}}\n"
)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)


def test_text_format_is_logfmt_with_every_context_field(captured: io.StringIO) -> None:
    logs.setup("info", "text", stream=captured)
    logging.getLogger("t").warning(
        "upstream rejected", extra={"upstream": "default.web", "reason": 'bad "port" = 0', "count": 3}
    )
    line = captured.getvalue().strip()
    assert " level=warning logger=t " in line
    assert 'msg="upstream rejected"' in line
    assert "upstream=default.web" in line
    assert 'reason="bad \\"port\\" = 0"' in line
    assert "count=3" in line


def test_a_bad_manifest_logs_file_and_field_in_both_formats(tmp_path: Path, captured: io.StringIO) -> None:
    (tmp_path / "web.yaml").write_text(BROKEN)
    for fmt in logs.FORMATS:
        captured.seek(0)
        captured.truncate()
        logs.setup("info", fmt, stream=captured)
        ManifestDirectory(tmp_path).scan()
        line = next(x for x in captured.getvalue().splitlines() if "bad manifest" in x)
        if fmt == "json":
            entry = json.loads(line)
            assert entry["file"].endswith("web.yaml") and "bogus" in entry["error"]
        else:
            assert "file=" in line and "web.yaml" in line and "bogus" in line


@pytest.mark.parametrize("command", ["run", "discover", "emulator"])
def test_every_logging_command_takes_both_formats(command: str) -> None:
    parser = cli.build_parser(command)
    required = {"run": ["--config", "."], "discover": ["--config", "."], "emulator": ["--fixture", "f"]}
    for fmt in logs.FORMATS:
        args = parser.parse_args([command, *required[command], "--log-format", fmt])
        assert args.log_format == fmt

"""The one redaction policy (gce_plugin/redact.py)."""

from __future__ import annotations

import pytest

from gce_plugin import redact


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("endpoint http://admin:hunter2@127.0.0.1:8085/compute", "hunter2"),
        ("GET /compute/v1/projects/p/zones?access_token=ya29.secret HTTP/1.1", "ya29.secret"),
        ("GET /x?alt=json&key=AIzaSECRET", "AIzaSECRET"),
        ("header Authorization: Bearer ya29.secret-token", "ya29.secret-token"),
        ("Unable to find the server at u:secretpw@127.0.0.1", "secretpw"),
    ],
)
def test_scrub_removes_credentials(text: str, secret: str) -> None:
    scrubbed = redact.scrub(text)
    assert secret not in scrubbed and "***" in scrubbed


def test_scrub_keeps_ordinary_text_and_fingerprints() -> None:
    text = (
        "upstream default.web: 3 endpoints at http://127.0.0.1:8085/ (Bearer sha256:0123456789abcdef), "
        "mail ops@example.com, at 12:30 on [::1]:18000, key=value"
    )
    assert redact.scrub(text) == text


def test_clip_and_show_are_bounded() -> None:
    assert redact.clip("x" * 10) == "x" * 10
    clipped = redact.clip("x" * 1000, 100)
    assert clipped.startswith("x" * 100) and clipped.endswith("[900 more characters]")
    assert len(redact.show(["y" * 10_000] * 10_000)) < 120
    assert len(redact.show({"k" * 1000: {"a": [list(range(1000))]}})) < 120


def test_field_names_are_shown_only_when_they_look_like_field_names() -> None:
    assert redact.field_name("instanceGroupName") == "instanceGroupName"
    assert redact.field_name("example.com/team") == "example.com/team"
    assert redact.field_name("root:$6$salt$hash:19000") == "<a key of 23 characters>"
    assert redact.field_name(42) == "<a int key>"

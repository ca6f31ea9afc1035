"""Credential sources: order, errors that name the source but never the secret, no ambient ADC."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import google.auth
import google.auth.exceptions
import pytest
from google.auth.credentials import AnonymousCredentials
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from gce_plugin.plugins.gce.credentials import COMPUTE_READONLY_SCOPE, CredentialsError, load_credentials
from tests.service_account import service_account_info

TOKEN_URI = "http://127.0.0.1:1/token"


@pytest.fixture
def no_adc(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Application default credentials replaced by a recorder: the test machine's never leak in."""
    calls: list[Any] = []

    def fake_default(scopes: Any = None, **_: Any) -> Any:
        calls.append(scopes)
        raise google.auth.exceptions.DefaultCredentialsError("no default credentials here")  # type: ignore[no-untyped-call]

    monkeypatch.setattr(google.auth, "default", fake_default)
    return calls


def write_json(path: Path, info: dict[str, Any]) -> str:
    path.write_text(json.dumps(info))
    return str(path)


def email_of(loaded: Any) -> str:
    assert isinstance(loaded.credentials, service_account.Credentials)
    return str(loaded.credentials.service_account_email)


def test_order_env_json_then_file_option_then_application_credentials(
    tmp_path: Path, no_adc: list[Any]
) -> None:
    env_json = json.dumps(service_account_info(TOKEN_URI, "env@p.iam.gserviceaccount.com"))
    option = write_json(
        tmp_path / "option.json", service_account_info(TOKEN_URI, "option@p.iam.gserviceaccount.com")
    )
    gac = write_json(tmp_path / "gac.json", service_account_info(TOKEN_URI, "gac@p.iam.gserviceaccount.com"))
    all_three = {"GOOGLE_CREDENTIALS_JSON": env_json, "GOOGLE_APPLICATION_CREDENTIALS": gac}

    loaded = load_credentials(option, "http://127.0.0.1:1/", all_three)
    assert email_of(loaded) == "env@p.iam.gserviceaccount.com"
    assert loaded.source == "GOOGLE_CREDENTIALS_JSON"
    assert loaded.credentials.scopes == [COMPUTE_READONLY_SCOPE]  # type: ignore[attr-defined]

    loaded = load_credentials(option, None, {"GOOGLE_APPLICATION_CREDENTIALS": gac})
    assert email_of(loaded) == "option@p.iam.gserviceaccount.com"
    assert loaded.source == f"credentials file {option}"

    loaded = load_credentials(None, None, {"GOOGLE_APPLICATION_CREDENTIALS": gac})
    assert email_of(loaded) == "gac@p.iam.gserviceaccount.com"
    assert no_adc == []


def test_anonymous_only_for_an_endpoint_override_with_nothing_else(no_adc: list[Any]) -> None:
    loaded = load_credentials(None, "http://127.0.0.1:8085/", {})
    assert isinstance(loaded.credentials, AnonymousCredentials)
    assert "anonymous" in loaded.source
    assert no_adc == []  # ADC is not even asked: no gcloud token is sent to an emulator


def test_application_default_credentials_last(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    adc = AnonymousCredentials()  # type: ignore[no-untyped-call]

    def fake_default(scopes: Any = None, **_: Any) -> Any:
        seen.append(scopes)
        return adc, "proj"

    monkeypatch.setattr(google.auth, "default", fake_default)
    loaded = load_credentials(None, None, {})
    assert loaded.credentials is adc
    assert loaded.source == "application default credentials"
    assert seen == [[COMPUTE_READONLY_SCOPE]]


def test_no_credentials_at_all_is_a_clear_error(no_adc: list[Any]) -> None:
    with pytest.raises(CredentialsError, match="application default credentials: no default credentials"):
        load_credentials(None, None, {})


def test_authorized_user_json_works(no_adc: list[Any]) -> None:
    info = {
        "type": "authorized_user",
        "client_id": "cid",
        "client_secret": "s3cr3t-value",
        "refresh_token": "r",
    }
    loaded = load_credentials(None, None, {"GOOGLE_CREDENTIALS_JSON": json.dumps(info)})
    assert isinstance(loaded.credentials, user_credentials.Credentials)


def test_bad_json_says_where_without_the_content(no_adc: list[Any]) -> None:
    secret = '{"type": "service_account", "private_key": "-----BEGIN TOPSECRET'
    with pytest.raises(CredentialsError) as caught:
        load_credentials(None, None, {"GOOGLE_CREDENTIALS_JSON": secret})
    assert str(caught.value).startswith("GOOGLE_CREDENTIALS_JSON: not valid JSON (line 1 column")
    assert "TOPSECRET" not in str(caught.value)


def test_an_unusable_key_says_where_without_the_key(tmp_path: Path, no_adc: list[Any]) -> None:
    info = service_account_info(TOKEN_URI)
    info["private_key"] = "-----BEGIN PRIVATE KEY-----\nTOPSECRETTOPSECRET\n-----END PRIVATE KEY-----\n"
    path = write_json(tmp_path / "sa.json", info)
    with pytest.raises(CredentialsError) as caught:
        load_credentials(path, None, {})
    message = str(caught.value)
    assert message.startswith(f"credentials file {path}: ")
    assert "TOPSECRET" not in message


def test_a_missing_field_is_named(no_adc: list[Any]) -> None:
    info = service_account_info(TOKEN_URI)
    del info["client_email"]
    with pytest.raises(CredentialsError, match=r"GOOGLE_CREDENTIALS_JSON: .*client_email") as caught:
        load_credentials(None, None, {"GOOGLE_CREDENTIALS_JSON": json.dumps(info)})
    assert "PRIVATE KEY" not in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path, no_adc: list[Any]) -> None:
    missing = str(tmp_path / "nope.json")
    with pytest.raises(
        CredentialsError, match=r"GOOGLE_APPLICATION_CREDENTIALS file .*nope.json: cannot read"
    ):
        load_credentials(None, None, {"GOOGLE_APPLICATION_CREDENTIALS": missing})

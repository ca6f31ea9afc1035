"""The OAuth2 token endpoint and --require-token, with google-auth's real service-account flow."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from google.oauth2 import service_account
from googleapiclient.errors import HttpError

from gce_plugin import redact
from gce_plugin.emulator import Emulator, Fixture
from tests.emulator.emulator_testkit import (
    EXAMPLE_FIXTURE,
    PROJECT,
    ZONE_A,
    bare_compute_client,
    compute_client,
    wait_for,
)
from tests.service_account import service_account_info

SCOPE = "https://www.googleapis.com/auth/compute.readonly"


@pytest.fixture
def guarded() -> Iterator[Emulator]:
    with Emulator(Fixture.load(EXAMPLE_FIXTURE), require_token=True) as running:
        yield running


def sa_credentials(emulator: Emulator) -> service_account.Credentials:
    info = service_account_info(
        emulator.token_uri, email="emulator-test@demo-project.iam.gserviceaccount.com"
    )
    credentials: service_account.Credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        info, scopes=[SCOPE]
    )
    return credentials


def post_form(url: str, form: dict[str, str]) -> tuple[int, Any]:
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def get_status(url: str, token: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def fake_jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2ln"


def test_calls_without_a_token_are_401_in_the_real_shape(guarded: Emulator) -> None:
    compute = bare_compute_client(guarded.url)
    with pytest.raises(HttpError) as caught:
        compute.instances().list(project=PROJECT, zone=ZONE_A).execute()
    error = caught.value
    assert error.status_code == 401
    assert error.error_details[0]["reason"] == "authError"
    assert error.error_details[0]["location"] == "Authorization"
    assert guarded.stats()["statuses"] == {"401": 1}


def test_the_service_account_flow_gets_a_token_and_calls_carry_it(guarded: Emulator) -> None:
    credentials = sa_credentials(guarded)
    compute = compute_client(guarded.url, credentials)
    listed = compute.instances().list(project=PROJECT, zone=ZONE_A).execute()
    assert len(listed["items"]) == 5
    compute.instanceGroups().get(project=PROJECT, zone=ZONE_A, instanceGroup="web").execute()

    [issued] = guarded.issued_tokens()
    claims = issued["claims"]
    assert claims["iss"] == "emulator-test@demo-project.iam.gserviceaccount.com"
    assert claims["aud"] == "https://oauth2.googleapis.com/token"  # google-auth always signs for Google's
    assert claims["scope"] == SCOPE
    stats = guarded.stats()
    assert stats["token_requests"] == 1
    assert stats["counts"] == {"instances.list": 1, "instanceGroups.get": 1}
    compute_requests = [r for r in stats["requests"] if r["method"] != "token"]
    assert [r["authorization"] for r in compute_requests] == [bearer(issued["access_token"])] * 2
    assert stats["last_authorization"] == bearer(issued["access_token"])
    assert credentials.token == issued["access_token"]


def test_a_revoked_token_is_refused_and_the_client_fetches_a_new_one(guarded: Emulator) -> None:
    compute = compute_client(guarded.url, sa_credentials(guarded))
    compute.zones().get(project=PROJECT, zone=ZONE_A).execute()
    assert guarded.revoke_tokens() == 1
    # google-auth's AuthorizedHttp answers a 401 by refreshing the token and retrying once.
    assert compute.zones().get(project=PROJECT, zone=ZONE_A).execute()["name"] == ZONE_A
    stats = guarded.stats()
    assert stats["token_requests"] == 2
    assert stats["statuses"] == {"200": 2, "401": 1}
    tokens = guarded.issued_tokens()
    assert [t["revoked"] for t in tokens] == [True, False]
    assert stats["last_authorization"] == bearer(tokens[1]["access_token"])


def test_forged_and_expired_tokens_are_refused() -> None:
    with Emulator(Fixture.load(EXAMPLE_FIXTURE), require_token=True, token_lifetime=0.3) as emulator:
        url = f"{emulator.compute_url}projects/{PROJECT}/zones/{ZONE_A}"
        assert get_status(url, "ya29.forged") == 401
        claims = {"iss": "a@b", "aud": emulator.token_uri, "iat": 0, "exp": 1, "scope": SCOPE}
        status, body = post_form(
            emulator.token_uri,
            {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": fake_jwt(claims)},
        )
        assert (status, body["token_type"], body["expires_in"]) == (200, "Bearer", 0)
        assert get_status(url, body["access_token"]) == 200
        wait_for(lambda: get_status(url, body["access_token"]) == 401, timeout=5)


def test_without_require_token_calls_pass_and_authorization_is_still_recorded(emulator: Emulator) -> None:
    compute = compute_client(emulator.url, sa_credentials(emulator))
    compute.zones().get(project=PROJECT, zone=ZONE_A).execute()
    issued = emulator.issued_tokens()[-1]["access_token"]
    assert issued.startswith("ya29.emulator-")
    assert emulator.stats()["last_authorization"] == bearer(issued)
    assert issued not in json.dumps(emulator.stats())
    anonymous = bare_compute_client(emulator.url)
    anonymous.zones().get(project=PROJECT, zone=ZONE_A).execute()
    assert emulator.stats()["last_authorization"] is None


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "refresh_token", "refresh_token": "x"}, "unsupported_grant_type"),
        ({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "abc"}, "invalid_grant"),
        (
            {
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": fake_jwt({"iss": "x"}),
            },
            "invalid_grant",
        ),
    ],
)
def test_bad_token_requests_get_oauth_errors(emulator: Emulator, form: dict[str, str], error: str) -> None:
    status, body = post_form(emulator.token_uri, form)
    assert (status, body["error"]) == (400, error)
    assert emulator.issued_tokens() == []


def bearer(token: str) -> str:
    """How the emulator's stats show a bearer token: its fingerprint, never the token."""
    return f"Bearer {redact.fingerprint(token)}"

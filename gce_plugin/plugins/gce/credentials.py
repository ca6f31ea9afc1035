"""Credentials for the Compute API, from google-auth, with the read-only compute scope.

Sources, first found wins:

1. ``GOOGLE_CREDENTIALS_JSON``: the credentials JSON itself (the seed plugin's variable);
2. the credentials file option (``GceSettings.credentials_file``, ``--credentials-file``);
3. ``GOOGLE_APPLICATION_CREDENTIALS``: a credentials file;
4. with a Compute endpoint override (an emulator) set: anonymous credentials. Application default
   credentials are not consulted then, so a developer's gcloud login (or a VM's metadata-server
   token) is never sent to an emulator and tests never reach for the metadata server;
5. application default credentials (``google.auth.default``: gcloud's file, the metadata server).

Every JSON type google-auth loads works (service account, authorized user, external account, ...).
Errors name the source and the reason, never the content: a secret never reaches a log line.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import google.auth
import google.auth.exceptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from gce_plugin import redact

COMPUTE_READONLY_SCOPE = "https://www.googleapis.com/auth/compute.readonly"
SCOPES = (COMPUTE_READONLY_SCOPE,)

CREDENTIALS_JSON_ENV = "GOOGLE_CREDENTIALS_JSON"
APPLICATION_CREDENTIALS_ENV = "GOOGLE_APPLICATION_CREDENTIALS"


class CredentialsError(Exception):
    """No usable credentials: says which source failed and why (without its content)."""


@dataclass(frozen=True)
class LoadedCredentials:
    credentials: Credentials
    # Where they came from, for logs: e.g. "GOOGLE_CREDENTIALS_JSON", "credentials file /x.json".
    source: str


def _scrubbed(message: str, info: Mapping[str, Any]) -> str:
    """``message`` with every longish string value of the credentials JSON masked, in case a
    library quotes one (a private key, a refresh token) in its error."""
    for value in info.values():
        if isinstance(value, str) and len(value) >= 8:
            message = message.replace(value, "***")
    return message


def _from_info(info: Any, source: str) -> LoadedCredentials:
    if not isinstance(info, dict):
        raise CredentialsError(f"{source}: not a JSON object")
    kind = info.get("type")
    scopes = list(SCOPES)
    credentials: Credentials
    try:
        if kind == "service_account":
            credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=scopes
            )
        elif kind == "authorized_user":
            credentials = user_credentials.Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
                info, scopes=scopes
            )
        else:
            # Other types (external_account, impersonated_service_account, ...) through google-auth's
            # generic loader. It warns about configurations from untrusted sources; this one is the
            # operator's own (their environment or flag), as trusted as the process itself.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                credentials, _project = google.auth.load_credentials_from_dict(  # type: ignore[no-untyped-call]
                    info, scopes=scopes
                )
    except (google.auth.exceptions.GoogleAuthError, ValueError, TypeError, KeyError) as exc:
        raise CredentialsError(f"{source}: {_scrubbed(str(exc), info)}") from None
    return LoadedCredentials(credentials, source)


def _from_json_text(text: str, source: str) -> LoadedCredentials:
    try:
        info = json.loads(text)
    except json.JSONDecodeError as exc:
        # The position only: the decoder's message does not quote the text, and neither do we.
        raise CredentialsError(f"{source}: not valid JSON (line {exc.lineno} column {exc.colno})") from None
    return _from_info(info, source)


def _from_file(path: str, source: str) -> LoadedCredentials:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise CredentialsError(f"{source}: cannot read: {exc.strerror or exc}") from None
    return _from_json_text(text, source)


def load_credentials(
    credentials_file: str | None = None,
    compute_endpoint: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> LoadedCredentials:
    """The credentials to call Compute with, by the order in the module docstring."""
    env = os.environ if environ is None else environ
    if env.get(CREDENTIALS_JSON_ENV):
        return _from_json_text(env[CREDENTIALS_JSON_ENV], CREDENTIALS_JSON_ENV)
    if credentials_file:
        return _from_file(credentials_file, f"credentials file {credentials_file}")
    if env.get(APPLICATION_CREDENTIALS_ENV):
        path = env[APPLICATION_CREDENTIALS_ENV]
        return _from_file(path, f"{APPLICATION_CREDENTIALS_ENV} file {path}")
    if compute_endpoint:
        anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
        return LoadedCredentials(anonymous, f"anonymous (compute endpoint {redact.scrub(compute_endpoint)})")
    try:
        credentials, _project = google.auth.default(scopes=list(SCOPES))
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise CredentialsError(
            f"application default credentials: {exc} (to use the Compute emulator instead, "
            "pass --compute-endpoint URL, e.g. --compute-endpoint http://127.0.0.1:8085/)"
        ) from None
    return LoadedCredentials(credentials, "application default credentials")

"""Helpers for the emulator tests: a real googleapiclient against a running emulator, polling,
free loopback ports, and a throwaway service-account key."""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httplib2
from google.auth.credentials import AnonymousCredentials, Credentials
from googleapiclient.discovery import build

EXAMPLE_FIXTURE = Path(__file__).resolve().parents[2] / "examples" / "fixture.yaml"
PROJECT = "demo-project"
ZONE_A = "us-central1-a"
ZONE_B = "us-central1-b"
REGION = "us-central1"

T = TypeVar("T")


def compute_client(endpoint: str, credentials: Credentials | None = None) -> Any:
    """The Compute v1 client exactly as the discovery plugin builds it."""
    return build(
        "compute",
        "v1",
        static_discovery=True,
        client_options={"api_endpoint": endpoint},
        credentials=credentials or AnonymousCredentials(),  # type: ignore[no-untyped-call]
        cache_discovery=False,
    )


def bare_compute_client(endpoint: str) -> Any:
    """A client on a plain ``httplib2.Http``: no credentials, so no Authorization header and no
    refresh-and-retry on 401."""
    return build(
        "compute",
        "v1",
        static_discovery=True,
        client_options={"api_endpoint": endpoint},
        http=httplib2.Http(timeout=10),
        cache_discovery=False,
    )


def wait_for(condition: Callable[[], T], timeout: float = 5.0, interval: float = 0.02) -> T:
    """Poll until ``condition()`` is truthy; return its value, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {condition}")
        time.sleep(interval)


def names(items: list[dict[str, Any]]) -> list[str]:
    return [item["name"] for item in items]


def member_names(items: list[dict[str, Any]]) -> list[str]:
    """listInstances items -> instance names (the last segment of each selfLink)."""
    return [item["instance"].rsplit("/", 1)[-1] for item in items]


def get_backend(ip: str, port: int, path: str = "/") -> tuple[int, str, str | None] | None:
    """(status, body, x-instance) from a --serve-backends server, or None when the connection is refused."""
    connection = http.client.HTTPConnection(ip, port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode(), response.getheader("x-instance")
    except ConnectionRefusedError:
        return None
    finally:
        connection.close()

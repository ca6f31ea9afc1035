"""The Compute discovery document: parsed once per process, cut down to the methods discovery calls,
and never shared between the service objects of two threads (googleapiclient writes into it)."""

from __future__ import annotations

import inspect
import re
import threading
from typing import Any

from gce_plugin.plugins.gce import compute
from gce_plugin.plugins.gce.compute import USED_METHODS, ComputeClient, _document, bundled_document


def test_document_is_parsed_once_and_holds_only_the_used_methods() -> None:
    document = _document()
    assert _document() is document
    assert {name: set(res["methods"]) for name, res in document["resources"].items()} == {
        name: set(methods) for name, methods in USED_METHODS.items()
    }
    # Every schema the kept methods refer to is there (request and response types).
    assert "InstanceGroupsListInstances" in document["schemas"]
    assert "InstanceList" in document["schemas"]
    assert len(document["schemas"]) < 100  # the full document has over a thousand


def test_the_packaged_document_is_the_installed_googleapiclient_one_pruned() -> None:
    assert _document() == bundled_document(), (
        "gce_plugin/plugins/gce/compute_v1_discovery.json is stale: regenerate it with "
        "python -c 'from gce_plugin.plugins.gce.compute import write_document; write_document()'"
    )


def test_every_call_of_the_client_is_a_kept_method() -> None:
    source = inspect.getsource(compute.ComputeClient)
    called = set(re.findall(r"s\.(\w+)\(\)\.(\w+)\(", source))
    assert called
    assert called <= {(name, m) for name, methods in USED_METHODS.items() for m in methods}


def test_threads_build_from_copies_not_from_the_shared_document() -> None:
    client = ComputeClient(None, endpoint="http://127.0.0.1:1/")
    services: list[Any] = []

    def build() -> None:
        services.append(client._service())

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first, second = services
    assert first is not second
    assert first._rootDesc is not second._rootDesc
    assert first._rootDesc is not _document()
    # Using a service (which fixes up its copy's method descriptions) leaves the shared one as parsed.
    before = repr(_document()["resources"]["instances"])
    first.instances().list(project="p", zone="z")
    assert repr(_document()["resources"]["instances"]) == before

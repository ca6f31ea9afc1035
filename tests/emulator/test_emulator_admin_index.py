"""``GET /admin/``: the emulator's admin API lists its own routes (it used to be a 404)."""

from __future__ import annotations

import json

from gce_plugin.emulator import Emulator
from gce_plugin.localstack import http_get


def test_admin_index_lists_every_route(emulator: Emulator) -> None:
    for path in ("admin/", "admin"):
        status, body = http_get(f"{emulator.url}{path}")
        assert status == 200
        routes = {(r["method"], r["path"]) for r in json.loads(body)["routes"]}
        assert ("GET", "/admin/stats") in routes
        assert ("POST", "/admin/faults") in routes
        assert ("POST", "/admin/projects/P/zones/Z/instances/I/stop") in routes
    # Every listed GET route without a placeholder answers.
    for method, route in sorted(routes):
        if method == "GET" and route.isascii() and not any(c.isupper() for c in route.split("/admin")[1]):
            assert http_get(f"{emulator.url}{route.lstrip('/')}")[0] == 200, route

"""A Compute Engine API emulator: the v1 calls the gce discovery plugin makes, served from a fixture,
with an admin API for changing VMs and groups, injecting faults and reading call counts.

``Emulator(Fixture.load(path)).start()`` in-process, or ``gce-plugin emulator --fixture PATH``.
"""

from gce_plugin.emulator.fixture import Fixture, FixtureError, Instance, InstanceGroup, NamedPort, Project
from gce_plugin.emulator.server import Emulator

__all__ = ["Emulator", "Fixture", "FixtureError", "Instance", "InstanceGroup", "NamedPort", "Project"]

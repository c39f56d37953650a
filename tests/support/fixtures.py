"""Shared test fixtures that live outside the repository.

The nova wire-format captures are in the workspace's ``shared/fixtures/nova``
directory, next to this repository; see its README.md.
"""

from __future__ import annotations

import json
import pathlib

__all__ = ["NOVA_FIXTURES", "list_primitive", "nova_fixture"]

NOVA_FIXTURES = (
    pathlib.Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "nova"
)


def nova_fixture(name: str) -> object:
    """The decoded JSON of one nova fixture, e.g. ``real_conductor/seed.json``."""
    with open(NOVA_FIXTURES / name, encoding="utf-8") as stream:
        return json.load(stream)


def list_primitive(name: str, version: str, objects: list[dict]) -> dict:
    """A list object primitive (InstanceList, BlockDeviceMappingList) of
    ``objects``, as nova-conductor replies."""
    return {
        "nova_object.name": name,
        "nova_object.namespace": "nova",
        "nova_object.version": version,
        "nova_object.data": {"objects": objects},
    }

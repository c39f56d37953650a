"""The errors that decide a pass's outcome and the process's exit status."""

__all__ = [
    "CachemgrError",
    "ConfigError",
    "ConfigFileError",
    "GatherError",
    "InventoryError",
    "InventoryUnavailable",
    "InventoryUntrustworthy",
    "UntrustedStorage",
]


class CachemgrError(Exception):
    """Base class of cachemgr's own errors."""


class ConfigError(CachemgrError):
    """A bad option value or file: exit status 2, nothing is done."""


class ConfigFileError(ConfigError):
    """A configuration file is missing or cannot be parsed."""


class InventoryError(CachemgrError):
    """The pass cannot know which instances exist: exit 1, nothing removed."""


class InventoryUnavailable(InventoryError):
    """The inventory could not be read at all (file missing, bus down)."""


class InventoryUntrustworthy(InventoryError):
    """The inventory was read but cannot be believed (malformed, incomplete,
    or empty while disks exist)."""


class GatherError(CachemgrError):
    """The disk or cache could not be scanned: exit 1, nothing removed."""


class UntrustedStorage(GatherError):
    """The storage is not laid out as its owner's (DESIGN 1.8): a cache dir
    of another owner; exit 1, nothing removed or refreshed."""

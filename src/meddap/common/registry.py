"""Registries: the one source of a vocabulary (classifiers, segmenters, dataset layouts).

A registry maps each name a config key may hold to its entry, in registration order. The config
schema only says such a key holds a string; `meddap.run.config` checks the name here, and every
module that needs the entry of a name gets it here, with the same one-sentence error.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from meddap.common.errors import MeddapError

Entry = TypeVar("Entry")


class Registry(Generic[Entry]):
    """Names of config key `key` (the `noun` it holds, e.g. "models") mapped to their entries."""

    def __init__(self, noun: str, key: str) -> None:
        self.noun, self.key = noun, key
        self._entries: dict[str, Entry] = {}
        self._shown: dict[str, None] = {}  # how the valid names are listed, in order

    def register(self, name: str, entry: Entry, shown: str | None = None) -> Entry:
        """Add `name`; `shown` lists a family of names as one pattern (e.g. dsunet-s<n>)."""
        if name in self._entries:
            raise MeddapError(f"{self.noun} {name!r} of config key '{self.key}' registered twice")
        self._entries[name] = entry
        self._shown[shown or name] = None
        return entry

    def names(self) -> tuple[str, ...]:
        """Every registered name, in registration order."""
        return tuple(self._entries)

    def listing(self) -> str:
        """The valid names as a sentence shows them: "a, b or c"."""
        shown = list(self._shown)
        return " or ".join(filter(None, [", ".join(shown[:-1]), shown[-1]]))

    def get(self, name: str, what: str) -> Entry:
        """The entry of `name`; stops naming `what` it is (e.g. "target segmenter"), the config
        key and the valid names."""
        if name not in self._entries:
            raise MeddapError(
                f"{what} {name!r} is not one of the {self.noun} of config key '{self.key}' "
                f"({self.listing()})"
            )
        return self._entries[name]

    def check(self, name: str, key: str) -> Entry:
        """The entry of `name`, read from config key `key` (e.g. 'segmentation.models.1');
        stops naming that key and the valid names."""
        if name not in self._entries:
            raise MeddapError(
                f"config key '{key}': {name!r} is not one of the {self.noun} of "
                f"'{self.key}' ({self.listing()})"
            )
        return self._entries[name]

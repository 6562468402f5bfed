"""Which events a poll, a topic or a subscription asks for."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rqs.domain import catalog


@dataclass(frozen=True, slots=True)
class Selector:
    """A filter over stored events. ``None`` means "no constraint"."""

    types: frozenset[str] | None = None
    exclude_types: frozenset[str] = frozenset()
    channels: frozenset[str] | None = None

    def matches(self, type_name: str, channel: str) -> bool:
        if self.types is not None and type_name not in self.types:
            return False
        if type_name in self.exclude_types:
            return False
        return self.channels is None or channel in self.channels

    @property
    def is_everything(self) -> bool:
        return self.types is None and not self.exclude_types and self.channels is None


EVERYTHING = Selector()


def for_poll_type(name: str) -> Selector | None:
    """Resolve a Mapp ``type`` value: a poll group, ``allMessages`` or a catalog type name."""
    name = name.strip()
    if name == catalog.ALL_MESSAGES:
        return Selector(exclude_types=catalog.GROUP_TYPES[catalog.PollGroup.SENT_TO_MTA])
    try:
        group = catalog.PollGroup(name)
    except ValueError:
        known = catalog.lookup(name)
        return Selector(types=frozenset({known.name})) if known else None
    return Selector(types=catalog.GROUP_TYPES[group])


def for_filters(types: Iterable[str] = (), channels: Iterable[str] = ()) -> Selector:
    """A selector from explicit lists; type names may be groups, types or uncatalogued names."""
    type_set: set[str] = set()
    exclude: frozenset[str] = frozenset()
    for t in types:
        resolved = for_poll_type(t)
        if resolved is None:
            type_set.add(catalog.canonical_type(t))
        elif resolved.types is None:  # allMessages inside a list: keep its exclusion
            exclude = resolved.exclude_types
            type_set = set()
            break
        else:
            type_set |= resolved.types
    chans = frozenset(str(catalog.parse_channel(c) or c) for c in channels) or None
    return Selector(types=frozenset(type_set) or None, exclude_types=exclude, channels=chans)

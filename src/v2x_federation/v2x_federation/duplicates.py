"""Path duplicates (pure): the same signed datagram heard by radio and through the broker.

Both copies are byte-identical (same session, counter and tag), so the Receiver would
count the second as `replayed`, which is what an attack looks like. A gateway with both
paths remembers the exact bytes of the datagrams its Receiver accepted recently and skips
an identical copy before the Receiver, counting it as a path duplicate instead. A replay
of a datagram older than this memory still meets the Receiver's rules.
"""

from collections import OrderedDict


class SeenDatagrams:
    """The last `limit` accepted datagrams, by their exact bytes."""

    def __init__(self, limit: int = 4096):
        self.limit = limit
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def __contains__(self, data: bytes) -> bool:
        return data in self._seen

    def add(self, data: bytes) -> None:
        """Remember an accepted datagram (the oldest is forgotten beyond the limit)."""
        self._seen[data] = None
        if len(self._seen) > self.limit:
            self._seen.popitem(last=False)

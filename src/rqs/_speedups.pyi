from collections.abc import Callable, Sequence

from rqs.domain.events import StoredEvent

def render_pairs(payloads: Sequence[bytes], xml: bool, /) -> list[bytes | None]: ...
def render_events(events: Sequence[StoredEvent], xml: bool, head_a: bytes, head_b: bytes,
                  head_c: bytes, tail: bytes, head: Callable[[StoredEvent], bytes],
                  fixed: Callable[[StoredEvent], bytes], pairs: Callable[[bytes], bytes],
                  /) -> bytes: ...
def render_native(events: Sequence[StoredEvent], ndjson: bool, id_prefix: bytes,
                  quote: Callable[[str], bytes], time: Callable[[int], bytes], /) -> bytes: ...

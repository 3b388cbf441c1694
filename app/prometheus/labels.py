"""The label rule: which labels of a Prometheus series name the tswatch stream its samples go to.

With the rule `__name__,instance` the series `node_load1{instance="db1:9100", job="node"}` goes to the stream
`node_load1,db1:9100`: the rule's label values in the rule's order, joined by a comma (a label the series lacks
counts as empty; a series with none of the rule's labels matches no stream and is dropped). The id is made safe
for the stream id rules and for URL paths: characters outside printable ASCII, whitespace and `/ ? # % \\` become
`_`; an id longer than the stream id limit is cut and ends in a hash of the full id, so distinct long ids stay
distinct. Pick labels that identify a series: series that share the rule's values share one stream (their
samples merge in time order, and a second sample at the same timestamp is skipped as a duplicate).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from app.streams.service import MAX_STREAM_ID

SEPARATOR: Final = ","
UNSAFE: Final = frozenset("/?#%\\")
HASH_CHARS: Final = 12


def safe_id(text: str) -> str:
    """`text` with every character a stream id (in a URL path) should not hold replaced by `_`, at most
    MAX_STREAM_ID characters (a cut id ends in `~` and a hash of the whole text)."""
    cleaned = "".join(char if " " < char <= "~" and char not in UNSAFE else "_" for char in text)
    if len(cleaned) <= MAX_STREAM_ID:
        return cleaned
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_CHARS]
    return f"{cleaned[: MAX_STREAM_ID - HASH_CHARS - 1]}~{digest}"


@dataclass(frozen=True)
class LabelRule:
    labels: tuple[str, ...]

    @classmethod
    def of(cls, labels: Sequence[str]) -> LabelRule:
        names = tuple(name.strip() for name in labels if name.strip())
        if not names:
            raise ValueError("the remote write label rule needs at least one label name")
        if len(set(names)) != len(names):
            raise ValueError(f"the remote write label rule names a label twice: {', '.join(names)}")
        return cls(names)

    def stream_id(self, labels: Mapping[str, str]) -> str | None:
        """The stream of a series with these labels; None when it has none of the rule's labels."""
        values = [labels.get(name, "") for name in self.labels]
        if not any(values):
            return None
        return safe_id(SEPARATOR.join(values))

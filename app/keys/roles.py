"""Key roles: each includes the ones below it (read < write < admin)."""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Role(StrEnum):
    """What a key may do; each role includes the ones below it (read < write < admin)."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, required: Role | str) -> bool:
        return self.rank >= Role(required).rank

    # str's lexical ordering would put admin first, so every comparison is redefined.
    def __lt__(self, other: object) -> bool:
        return self.rank < other.rank if isinstance(other, Role) else NotImplemented

    def __le__(self, other: object) -> bool:
        return self.rank <= other.rank if isinstance(other, Role) else NotImplemented

    def __gt__(self, other: object) -> bool:
        return self.rank > other.rank if isinstance(other, Role) else NotImplemented

    def __ge__(self, other: object) -> bool:
        return self.rank >= other.rank if isinstance(other, Role) else NotImplemented


_RANKS: Final = {Role.READ: 0, Role.WRITE: 1, Role.ADMIN: 2}

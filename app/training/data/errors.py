"""The one error of data preparation, and how its messages word counts (times: `app.timestamps`)."""

from __future__ import annotations


class DataValidationError(ValueError):
    """The training data cannot be used; the message says where and how to fix it."""


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"

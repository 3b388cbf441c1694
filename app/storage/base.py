"""The declarative base: every table class derives from it, so the whole schema lives in one metadata."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass

"""The jobs' domain errors, each with its HTTP status."""

from __future__ import annotations

from app.errors import ConflictError, InvalidInputError, NotFoundError, PayloadTooLargeError


class JobNotFoundError(NotFoundError):
    title = "Job not found"
    slug = "job-not-found"


class JobFinishedError(ConflictError):
    title = "Job finished"
    slug = "job-finished"


class TrainingInputTooLargeError(PayloadTooLargeError):
    title = "Training input too large"
    slug = "training-input-too-large"


class InvalidTrainingInputError(InvalidInputError):
    title = "Invalid training input"
    slug = "invalid-training-input"


class JobStoppedError(Exception):
    """Raised in a worker whose job is no longer running (cancelled, or failed by a server): stop at once,
    register nothing."""

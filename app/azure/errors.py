"""Azure Anomaly Detector's error codes, and the one exception that carries one (answered as `{code, message}`).

The codes are those of Azure's univariate REST API (`AnomalyDetectorErrorCodes` in its clients). On the
`/anomalydetector/...` paths every error the API answers has Azure's shape (`app.api.problems`): an
`AzureError` brings its own code; any other error gets the code of its field (`code_for_field`, for request
validation) or of its HTTP status (`code_for_status`).
"""

from __future__ import annotations

from typing import Final

from app.errors import TswatchError

BAD_ARGUMENT: Final = "BadArgument"
INVALID_CUSTOM_INTERVAL: Final = "InvalidCustomInterval"
INVALID_GRANULARITY: Final = "InvalidGranularity"
INVALID_PERIOD: Final = "InvalidPeriod"
INVALID_MODEL_ARGUMENT: Final = "InvalidModelArgument"
INVALID_SERIES: Final = "InvalidSeries"
INVALID_JSON_FORMAT: Final = "InvalidJsonFormat"
REQUIRED_GRANULARITY: Final = "RequiredGranularity"
REQUIRED_SERIES: Final = "RequiredSeries"
INVALID_IMPUTE_MODE: Final = "InvalidImputeMode"
INVALID_IMPUTE_FIXED_VALUE: Final = "InvalidImputeFixedValue"

_FIELD_CODES: Final = {
    "series": INVALID_SERIES,
    "granularity": INVALID_GRANULARITY,
    "customInterval": INVALID_CUSTOM_INTERVAL,
    "period": INVALID_PERIOD,
    "sensitivity": INVALID_MODEL_ARGUMENT,
    "maxAnomalyRatio": INVALID_MODEL_ARGUMENT,
    "stableTrendWindow": INVALID_MODEL_ARGUMENT,
    "threshold": INVALID_MODEL_ARGUMENT,
    "imputeMode": INVALID_IMPUTE_MODE,
    "imputeFixedValue": INVALID_IMPUTE_FIXED_VALUE,
}
_REQUIRED_CODES: Final = {"series": REQUIRED_SERIES, "granularity": REQUIRED_GRANULARITY}
_STATUS_CODES: Final = {
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    408: "RequestTimeout",
    413: INVALID_SERIES,  # Azure refuses an over-long series with InvalidSeries
    415: INVALID_JSON_FORMAT,
    429: "TooManyRequests",
    503: "ServiceUnavailable",
}


class AzureError(TswatchError):
    """A request Azure's API would refuse, with Azure's error code (400 unless said otherwise)."""

    title = "Invalid request"
    slug = "azure-bad-request"

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def code_for_field(location: tuple[str | int, ...], error_type: str) -> str:
    """Azure's code for a request-validation error at `location` (the body's path, `body` first stripped)."""
    if not location or error_type == "json_invalid":
        return INVALID_JSON_FORMAT
    field = str(location[0])
    if error_type == "missing" and len(location) == 1:
        return _REQUIRED_CODES.get(field, BAD_ARGUMENT)
    if field == "series" and len(location) > 1:
        return BAD_ARGUMENT  # a point's timestamp or value is malformed
    return _FIELD_CODES.get(field, BAD_ARGUMENT)


def code_for_status(status: int) -> str:
    """Azure's code for an error known only by its HTTP status."""
    if status >= 500:
        return "InternalServerError"
    return _STATUS_CODES.get(status, BAD_ARGUMENT)

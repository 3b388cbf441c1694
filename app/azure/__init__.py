"""Azure Anomaly Detector compatibility: its univariate operations answered by the project's own detector.

`service` runs the three operations (entire, last, change point); `series` checks a request's series as Azure
does and imputes gaps; `context` builds the learning context the detector reads first; `univariate` and
`changepoint` map the detector's scored points to Azure's fields; `errors` holds Azure's error codes. The HTTP
side is `app.api.routes.azure` and `app.api.schemas.azure`.
"""

"""The inference worker process's program: the serving frame loop answering forecast bodies.

`app.api.services` passes this module to `InferenceWorker`, which starts it as
`python -m app.api.inference_worker --fd N [--threads T]`.
"""

from __future__ import annotations

from app.api.forecast_answers import answer_forecasts
from app.serving.worker import run


def main(argv: list[str] | None = None) -> None:
    run(answer_forecasts, argv)


if __name__ == "__main__":
    main()

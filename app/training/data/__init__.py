"""Training data: a CSV/TSV/Parquet table in, regular, gap-free, finite series out.

One module per job, composed by `prepared.load_training_data` / `prepared.prepare` into a `PreparedData`:

* `reading`: file -> DataFrame (CSV/TSV, optionally gzipped, or Parquet; separator and decimal mark).
* `parsing`: columns -> timestamps (day-first dates detected), values and series ids, refusing cells a model
  cannot learn from.
* `series`: rows -> one series per id, sorted into time order (with a notice), duplicates refused.
* `frequency`: the spacing all series share, named as a pandas offset alias.
* `gaps`: missing points on that grid, filled or refused by the gap policy.
* `seasons`: the dominant seasonal period of a prepared series.
* `split_sizes`: which window and horizon a series is long enough for (the "too few points" message).

What was changed and the user should know (sorting, the date order) is in `PreparedData.notices`.
Every refusal is a `errors.DataValidationError` whose message names the file, the column, the row or
timestamp, and how to fix it. Row numbers count data rows from 1 (a CSV header line is not counted).
"""

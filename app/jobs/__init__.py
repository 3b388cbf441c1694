"""Training jobs: `POST /v1/models/{name}/versions` trains in a worker process, never in the server's.

`service` (in the server) saves a job's input, queues it, runs at most `max_training_jobs` workers, supervises
them and fails the jobs of servers that died; `runner` is the worker's program; `store` holds the job rows.
"""

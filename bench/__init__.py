"""FeedbackHub benchmarks: ``python -m bench.run`` (``make bench``) runs them all and rewrites docs/benchmarks.md.

Each benchmark is one module (``bench.import_bench``, ``bench.list_bench``) with a ``run(ctx)`` function that
returns a JSON-serialisable result; ``bench.run`` prints its table, stores it in ``bench/results/<name>.json`` and
regenerates the report. Benchmarks use their own databases (``feedbackhub_bench*``), never the development or
test databases.
"""

"""The demo set: realistic conversations and the review work done on them, so a fresh ``make run`` shows every
feature (``python manage.py seed_demo``).

- ``scenarios``: the per-domain banks of scenarios, read from ``data/*.json``;
- ``generator``: seeded native JSONL from those banks (the same seed gives byte-identical output);
- ``reviews``: reviewers' work on the imported set, through the apps' services (comments, threads, suggestions,
  corrections, a curated dataset with a cut version, triage clusters in several states);
- ``seeding``: the whole run, used by the ``seed_demo`` command.

Part of the composition root: it may use every app, and no app imports it.
"""

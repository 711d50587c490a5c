"""Live ingest: conversations and end-user feedback sent by the LLM app as they happen (docs/ingest.md).

- ``services``: writes. Conversations go through the import pipeline's validation and merge (one ImportBatch per
  request, so every app above reacts as to a file import); feedback events are written per turn, idempotent by id.
- ``payloads``: the request bodies (JSON, NDJSON) and their limits.
- ``otlp_wire`` (the OTLP/HTTP format), ``genai`` (GenAI spans as turn records), ``otlp`` (spans grouped into
  conversations and stored).
- ``api``, ``widget``: the views (token API and OTLP receiver; the embeddable widget and its publishable keys).
"""

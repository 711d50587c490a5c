"""Importing conversation logs: everything from the upload form to the merged rows, one module per job.

* ``views``, ``forms``, ``selectors``: the import pages (upload a file, follow a batch to its report);
* ``uploads``: the upload handler that streams a file to disk while hashing it, and the writes around a stored
  upload (the import services themselves are :mod:`sessions.services`);
* ``formats``: one module per log format (native, openai, sharegpt, csv) and format detection;
* ``reader`` (bytes, gzip, lines, JSON arrays), ``base`` (records, rejections), ``normalise`` (validation into the
  native shape), ``errors``;
* ``pipeline``: one file through ``chunking`` (the reader thread) and ``loading`` (the merge), whose SQL is in
  ``merge_sql``.
"""

"""v2x_evidence: signed, chained evidence of the clip archive (the library).

``evidence``: sidecar signatures, log records and their checks (pure, no files of its own);
``log``: the append-only evidence log of an archive (signed records, the signed head);
``export``: one tar proving a clip's place in the chain; ``hold``: legal holds as log
records. Used by v2x_recorder (event_clipper, the evidence CLIs) and by v2x_console
(signature status, hold, export), neither importing the other. docs/recorder.md.
"""

"""The authoring studio's use cases, apart from HTTP: the campaign files of a folder
(`workspace`: read with a version, saved atomically, never outside the folder) and
checking unsaved text as it is typed (`checking`: diagnostics, positions, the
flowchart), a node's notification for a sample subscriber (`preview`) and the text
simulated with its figures on the flowchart (`overlay`); with the configured database,
the journeys in flight and a test send (`live`). `orchestrator.web.studio` serves them; `campaign studio` starts it.
"""

__all__ = ["checking", "live", "overlay", "preview", "workspace"]

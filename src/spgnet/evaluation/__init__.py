"""Scoring generated images: the metrics (:mod:`.metrics`, one file per metric, one
registry), the in-memory :class:`~spgnet.evaluation.batch.BatchEvaluator` used by training
validation and the demo, directory scoring for ``spgnet evaluate``
(:mod:`.directory`) and its reports (:mod:`.report`). Protocol: docs/evaluation.md."""

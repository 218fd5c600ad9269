"""Primitives every layer uses: image and atomic file I/O (:mod:`.io`), the one device
helper (:mod:`.device`), torch helpers (:mod:`.torch_utils`), pretrained-weight lookup
(:mod:`.weights`) and checkpoints (:mod:`.checkpoint`). Nothing here imports a model."""

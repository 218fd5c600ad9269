"""Stage-2 generator and its parts (docs/design.md §8).

* :mod:`.config` — ``ModelConfig`` (generator / SPATN / discriminator) and presets;
* :mod:`.sean` — ACE, SEAN region-adaptive normalization (paper Eq. 6-7);
* :mod:`.style` — style encoder and region average pooling;
* :mod:`.blocks` — residual blocks, feature deformation helpers, SPGBlock;
* :mod:`.generator` — ``SPGNetGenerator``;
* :mod:`.official` — official-release weight names <-> ours.

The config classes import without torch; the modules are imported on first use.
"""

from __future__ import annotations

import importlib

from spgnet.models.config import (MODEL_PRESETS, VARIANTS, DiscriminatorConfig, GeneratorConfig, ModelConfig,
                                  SPATNConfig, model_preset)

_LAZY = {
    "ACE": "sean", "StyleEncoder": "style", "region_average_pool": "style", "SPGBlock": "blocks",
    "SPGNetGenerator": "generator",
    "official_state_dict_to_ours": "official", "ours_state_dict_to_official": "official",
    "load_official_generator_state": "official",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"spgnet.models.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'spgnet.models' has no attribute {name!r}")


__all__ = ["MODEL_PRESETS", "VARIANTS", "DiscriminatorConfig", "GeneratorConfig", "ModelConfig",
           "SPATNConfig", "model_preset", *_LAZY]

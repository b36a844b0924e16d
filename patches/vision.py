"""CLIP and SigLIP vision towers as legacy vision-language code reaches into them (M41).

Until transformers 5.6, ``CLIPVisionModel`` and ``SiglipVisionModel`` held one
submodule, ``vision_model``, a ``CLIPVisionTransformer`` /
``SiglipVisionTransformer`` with the embeddings, the encoder and the final
layer norm. 5.6 folded that class into the model: ``embeddings``, ``encoder``
and ``post_layernorm`` are the model's own attributes now (checkpoints written
with the old names still load: transformers renames their keys). Remote and
vendored vision-language code written before then reaches through the old
attribute, to drop the last encoder layer, to resize the position embedding
for another image size or to wrap the attention layers::

    self.vision_tower = CLIPVisionModel.from_pretrained(path)
    del self.vision_tower.vision_model.encoder.layers[-1:]
    weight = self.vision_tower.vision_model.embeddings.position_embedding.weight

and fails with ``AttributeError: 'CLIPVisionModel' object has no attribute
'vision_model'``; code that imports the inner class (``from
transformers.models.clip.modeling_clip import CLIPVisionTransformer``) fails at
import.

* ``m41-vision-model-attribute`` gives legacy code (``transformers_modules.*``
  and modules declared legacy) ``tower.vision_model``: the tower itself, whose
  attributes are the ones the old inner module had. Every other caller
  (transformers' own loading code asks ``hasattr(model, "vision_model")`` to
  place checkpoint prefixes) still sees no such attribute.
* ``m41-vision-transformer-classes`` restores the class names as subclasses of
  the vision models: the same submodules under the same names as the 4.x inner
  class (so its state-dict keys), built from a vision config, called with
  ``pixel_values`` and the 4.x output flags.
"""

from __future__ import annotations

import types
from typing import Any

from hotfix.authoring import Finding, Shims, called_from_legacy

# the transformers module, the prefix of its classes
FAMILIES = {
    "transformers.models.clip.modeling_clip": "CLIP",
    "transformers.models.siglip.modeling_siglip": "Siglip",
}


def _folded(module: types.ModuleType) -> tuple[bool, str]:
    prefix = FAMILIES[module.__name__]
    tower = getattr(module, f"{prefix}VisionModel", None)
    if tower is None:
        return False, f"{module.__name__} has no {prefix}VisionModel"
    inner = vars(module).get(f"{prefix}VisionTransformer")
    if inner is not None and not getattr(inner, "_hotfix_restored", False):
        return False, f"{prefix}VisionModel still holds a {prefix}VisionTransformer as vision_model"
    return True, f"{prefix}VisionModel has no inner vision_model: {prefix}VisionTransformer was folded into it (5.6)"


def probe_vision_model_attribute(module: types.ModuleType) -> Finding:
    return _folded(module)


def apply_vision_model_attribute(module: types.ModuleType, shims: Shims) -> None:
    prefix = FAMILIES[module.__name__]
    tower_class = getattr(module, f"{prefix}VisionModel")

    def get(self: Any) -> Any:
        own = self.__dict__.get("_modules", {}).get("vision_model", self.__dict__.get("vision_model"))
        if own is not None:  # a subclass that set its own vision_model keeps it
            return own
        if not called_from_legacy():
            raise AttributeError(f"'{type(self).__name__}' object has no attribute 'vision_model'")
        if not shims.marked:
            shims.mark_used(f"{type(self).__name__}.vision_model read by legacy code: the tower itself")
        return self

    def put(self: Any, value: Any) -> None:
        self.__dict__["vision_model"] = value

    shims.restore(tower_class, "vision_model", property(get, put), kind="value")


def probe_vision_transformer_classes(module: types.ModuleType) -> Finding:
    return _folded(module)


def apply_vision_transformer_classes(module: types.ModuleType, shims: Shims) -> None:
    prefix = FAMILIES[module.__name__]
    tower_class = getattr(module, f"{prefix}VisionModel")
    name = f"{prefix}VisionTransformer"
    doc = (
        f"{name} as legacy code imports it (folded into {prefix}VisionModel in transformers 5.6): the same "
        f"submodules under the same names, built from a vision config. Restored by hotfix."
    )
    namespace = {"__module__": module.__name__, "__doc__": doc, "__qualname__": name, "_hotfix_restored": True}
    restored = type(name, (tower_class,), namespace)
    shims.restore(module, name, restored)

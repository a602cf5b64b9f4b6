"""nerfstudio plugin: protect, edit and evaluate splatfacto scenes inside ``ns-train``.

Registered through entry points (``pip install "adlift[nerfstudio]"``)::

    ns-train adlift-protect --data DATA --load-dir RUN/nerfstudio_models   # or --pipeline.model.scene scene.ply
    ns-train adlift-edit --data DATA --pipeline.model.scene protected.ply
    ns-adlift-evaluate --load-config RUN/config.yml

Modules that import nerfstudio are loaded only by nerfstudio itself (through the entry points) or
on demand: ``import adlift`` / ``import adlift.nerfstudio`` never imports nerfstudio.

* :mod:`adlift.nerfstudio.splatfacto` - splatfacto checkpoints -> :class:`~adlift.scene.GaussianScene`,
  nerfstudio camera tensors -> :class:`~adlift.cameras.Cameras` (no nerfstudio import);
* :mod:`adlift.nerfstudio.evaluate` - ``ns-adlift-evaluate`` (no nerfstudio import);
* :mod:`adlift.nerfstudio.pipeline` - the Model / Pipeline / Trainer that run Lifted PGD and the
  Instruct-GS2GS-style edit as nerfstudio training loops (imports nerfstudio);
* :mod:`adlift.nerfstudio.methods` - the ``MethodSpecification`` objects behind the entry points.
"""

from adlift.nerfstudio.splatfacto import (
    cameras_from_nerfstudio,
    find_checkpoint,
    is_splatfacto_state,
    read_splatfacto_checkpoint,
    scene_from_splatfacto_state,
)

__all__ = [
    "cameras_from_nerfstudio",
    "find_checkpoint",
    "is_splatfacto_state",
    "read_splatfacto_checkpoint",
    "scene_from_splatfacto_state",
]

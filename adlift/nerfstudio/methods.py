"""The ``MethodSpecification`` objects nerfstudio finds through our entry points.

``pyproject.toml``::

    [project.entry-points."nerfstudio.method_configs"]
    adlift-protect = "adlift.nerfstudio.methods:adlift_protect"
    adlift-edit = "adlift.nerfstudio.methods:adlift_edit"

Both use splatfacto's datamanager (full images, any nerfstudio dataparser; ``nerfstudio-data`` by
default) and run until their AdLift run is done (``--max-num-iterations`` caps it).
"""

from __future__ import annotations

from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanagerConfig
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from nerfstudio.plugins.types import MethodSpecification

from adlift.nerfstudio.pipeline import (
    AdLiftEditModelConfig,
    AdLiftPipelineConfig,
    AdLiftProtectModelConfig,
    AdLiftTrainerConfig,
)


def _datamanager() -> FullImageDatamanagerConfig:
    # AdLift renders its own targets and only needs the cameras; images are cached as uint8 on the
    # training device (nerfstudio's "cpu" cache pins memory, which needs a CUDA device).
    return FullImageDatamanagerConfig(dataparser=NerfstudioDataParserConfig(load_3D_points=False),
                                      cache_images_type="uint8")  # fmt: skip


def _method(name: str, model, steps_per_save: int, description: str) -> MethodSpecification:
    """A method whose "training" is an AdLift run: no optimizers or eval passes of nerfstudio's own,
    stops when the run is done."""
    return MethodSpecification(
        config=AdLiftTrainerConfig(
            method_name=name,
            steps_per_save=steps_per_save,
            steps_per_eval_batch=0,
            steps_per_eval_image=0,
            steps_per_eval_all_images=0,
            max_num_iterations=1_000_000,
            mixed_precision=False,
            pipeline=AdLiftPipelineConfig(datamanager=_datamanager(), model=model),
            optimizers={},
            viewer=ViewerConfig(num_rays_per_chunk=1 << 15),
            vis="viewer",
        ),
        description=description,
    )


adlift_protect = _method(
    "adlift-protect",
    AdLiftProtectModelConfig(),
    50,
    "AdLift: protect a 3DGS scene (splatfacto checkpoint or .ply) against instruction-driven "
    "editing with Lifted PGD; one iteration per view and round",
)

adlift_edit = _method(
    "adlift-edit",
    AdLiftEditModelConfig(),
    500,
    "AdLift: Instruct-GS2GS-style edit of a (protected or raw) 3DGS scene, to attack your own asset",
)

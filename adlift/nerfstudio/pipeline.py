"""nerfstudio glue: Lifted PGD and the Instruct-GS2GS-style edit as ``ns-train`` training loops.

Imports nerfstudio; loaded by nerfstudio through the ``nerfstudio.method_configs`` entry points
(:mod:`adlift.nerfstudio.methods`), never by ``import adlift``.

How a run maps onto nerfstudio:

* the **datamanager** is splatfacto's (full images, nerfstudio's dataparsers): its training split
  gives the training views, its eval split the novel views (measured, never optimised on);
* the **model** (:class:`AdLiftProtectModel`, :class:`AdLiftEditModel`) holds the scene and an
  AdLift run (:class:`adlift.protect.ProtectionRun` / :class:`adlift.editors.SceneEditRun`); it
  renders with ``adlift.render`` (pure PyTorch on CPU, gsplat or our CUDA kernels on a GPU), so
  ``--machine.device-type cpu`` works;
* one **training iteration** = one unit of the AdLift run (protect: one view of one round of
  Lifted PGD; edit: one Gaussian step, the dataset update at the start of each round); losses and
  PSNR / L-infinity go to nerfstudio's writers, the viewer shows the current scene;
* nerfstudio checkpoints carry the run (module extra state), so ``--load-dir`` of an adlift run
  resumes it; ``--load-dir`` of a *splatfacto* run instead takes its Gaussians as the input scene;
* at the end, the results are written next to ``config.yml``: protect writes what ``adlift
  protect`` writes (protected.ply, manifest.json, transforms.json, preview.png; raw.ply when the
  input was a checkpoint), so ``adlift evaluate RUN`` / ``ns-adlift-evaluate`` work on it; edit
  writes edited.ply, before_after.png and edit.json.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple, Type

import torch
from nerfstudio.cameras.cameras import Cameras as NsCameras
from nerfstudio.engine.trainer import Trainer, TrainerConfig
from nerfstudio.models.base_model import Model, ModelConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig
from nerfstudio.utils.rich_utils import CONSOLE

from adlift.cameras import Cameras
from adlift.editors import EditorRef
from adlift.editors.scene_edit import SceneEditConfig
from adlift.errors import AdLiftError
from adlift.io.formats import SCENE_FORMATS
from adlift.nerfstudio.splatfacto import cameras_from_nerfstudio, find_checkpoint, is_splatfacto_state
from adlift.protect.config import ProtectConfig
from adlift.protect.manifest import NerfstudioInfo
from adlift.render.api import BACKENDS
from adlift.scene import GaussianScene


# ======================================================================================= models
@dataclass
class AdLiftModelConfig(ModelConfig):
    """What every AdLift nerfstudio model needs: the input scene, its frame, the editor."""

    _target: Type = field(default_factory=lambda: AdLiftModel)
    scene: Optional[Path] = None
    """The input scene: a 3DGS .ply, or a splatfacto checkpoint (a .ckpt file or a nerfstudio_models
    directory). `--load-dir` of a splatfacto run sets it."""
    scene_frame: Literal["training", "original"] = "training"
    """Frame of the scene's coordinates: training = nerfstudio's training frame (splatfacto checkpoints,
    `ns-export gaussian-splat` output); original = the dataset's own frame before nerfstudio re-orients,
    re-centres and re-scales it (a .ply from the original 3DGS code, or scenes made on the transforms.json)."""
    instruction: str = "turn him into a clown"
    """The edit instruction (protect: the edit to protect against)."""
    editor: EditorRef = "ip2p"  # type: ignore[valid-type]
    """The editor (help text: adlift.editors.EDITORS): a registered name, a hub id or a local dir."""
    width: Optional[int] = None
    """Render width of the training views (intrinsics rescaled, aspect kept); default: the dataset's."""
    backend: BACKENDS.literal("auto") = "auto"  # type: ignore[valid-type]
    """AdLift rasteriser: auto = our CUDA kernels or gsplat on a GPU, the pure-PyTorch one on CPU."""
    background: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Background colour R G B in [0, 1]."""


class AdLiftModel(Model):
    """Base of the AdLift models: a GaussianScene rendered with adlift.render, no nerfstudio optimiser."""

    config: AdLiftModelConfig

    def populate_modules(self) -> None:
        super().populate_modules()
        self.scene: Optional[GaussianScene] = None  # what the viewer shows
        self.dataparser_transform: Optional[torch.Tensor] = None  # [3, 4]
        self.dataparser_scale = 1.0
        self.train_cameras: Optional[Cameras] = None
        self.novel_cameras: Optional[Cameras] = None
        self.source_path: Optional[Path] = None
        self.source_kind = ""
        self.output_dir: Optional[Path] = None
        self.iterations_done = 0
        self.run = None  # the AdLift run (ProtectionRun / SceneEditRun) once training starts
        self.editor = None
        self.loss = None  # adlift-protect: the adversarial loss (the written file is measured with it)

    # ------------------------------------------------------------------ set-up by the pipeline
    def attach(self, train: NsCameras, novel: Optional[NsCameras], names: tuple, dataparser_transform, scale,
               test_mode: str) -> None:  # fmt: skip
        """Take the dataset's cameras (and frame), load the scene, start the run (when training)."""
        self.dataparser_transform = dataparser_transform.detach().cpu() if dataparser_transform is not None else None
        self.dataparser_scale = float(scale)
        self.train_cameras = self._to_adlift(train, names[0])
        self.novel_cameras = self._to_adlift(novel, names[1]) if novel is not None and len(novel) else None
        training = test_mode == "val"  # ns-train; ns-viewer / ns-eval / ns-render load "test" or "inference"
        if self.config.scene is not None and (training or Path(self.config.scene).exists()):
            self.scene = self._load_scene(Path(self.config.scene)).to(self.device)
        elif training:
            raise AdLiftError(
                "no input scene: give --pipeline.model.scene SCENE.ply, or --load-dir of a splatfacto run's "
                "nerfstudio_models directory"
            )
        if training:
            self.start_run()  # outside training, the checkpoint's extra state brings the scene

    def _to_adlift(self, cams: NsCameras, names, resize: bool = True) -> Cameras:
        inverse = self.config.scene_frame == "original" and self.dataparser_transform is not None
        out = cameras_from_nerfstudio(
            cams.camera_to_worlds, cams.fx, cams.fy, cams.cx, cams.cy, cams.width, cams.height,
            [Path(n).stem for n in names] if names else None,
            dataparser_transform=self.dataparser_transform if inverse else None,
            dataparser_scale=self.dataparser_scale,
        )  # fmt: skip
        return out.resized(width=self.config.width) if self.config.width and resize else out

    def _load_scene(self, path: Path) -> GaussianScene:
        from adlift.io.formats import formats_for_name, read_scene
        from adlift.nerfstudio.splatfacto import read_splatfacto_checkpoint

        if formats_for_name(path):  # a scene file (.ply or any registered format), else a checkpoint
            self.source_path, self.source_kind = path, "ply"
            return read_scene(path)
        self.source_path, self.source_kind = find_checkpoint(path), "splatfacto-checkpoint"
        return read_splatfacto_checkpoint(self.source_path)

    def load_editor(self):
        from adlift.editors import load_editor, warn_untrained

        editor = load_editor(self.config.editor, device=self.device)
        warn_untrained(editor, lambda line: CONSOLE.print(f"[bold red]{line}"))
        return editor

    def start_run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def total_iterations(self) -> int:
        """Iterations of the whole run (its work units; 0 before it starts)."""
        return self.run.total if self.run is not None else 0

    def train_step(self, step: int) -> Dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def finish(self, output_dir: Path) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def current_scene(self) -> Optional[GaussianScene]:
        return self.scene

    # ------------------------------------------------------------------ nerfstudio Model API
    def get_param_groups(self) -> Dict[str, List[torch.nn.Parameter]]:
        return {}  # AdLift runs keep their own optimisers

    def get_outputs(self, camera: NsCameras) -> Dict[str, torch.Tensor]:  # type: ignore[override]
        from adlift.render import render

        scene = self.current_scene()
        h, w = int(camera.height.reshape(-1)[0]), int(camera.width.reshape(-1)[0])
        if scene is None:
            return {"rgb": torch.zeros(h, w, 3, device=self.device)}
        cams = self._to_adlift(camera.flatten()[0:1], None, resize=False)
        bg = torch.tensor(self.config.background, dtype=scene.dtype, device=scene.device)[None]
        with torch.no_grad():
            out = render(scene, cams.to(scene.device), backend=self.config.backend, background=bg)
        return {
            "rgb": out.rgb[0].permute(1, 2, 0).clamp(0, 1),  # [H, W, 3]
            "accumulation": out.alpha[0].permute(1, 2, 0),  # [H, W, 1]
            "depth": out.depth[0].permute(1, 2, 0),  # [H, W, 1]
        }

    @torch.no_grad()
    def get_outputs_for_camera(self, camera: NsCameras, obb_box=None) -> Dict[str, torch.Tensor]:
        return self.get_outputs(camera.to(self.device))

    def get_metrics_dict(self, outputs, batch) -> Dict[str, torch.Tensor]:
        return {}

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, torch.Tensor]:
        return {}

    def get_image_metrics_and_images(self, outputs, batch):
        from adlift.image_metrics import psnr_per_image

        rgb = outputs["rgb"]
        gt = batch["image"].to(rgb.device)
        gt = gt.float() / 255.0 if not gt.is_floating_point() else gt
        gt = gt[..., :3]
        metrics = {}
        if gt.shape == rgb.shape:
            metrics["psnr"] = float(psnr_per_image(rgb.permute(2, 0, 1)[None], gt.permute(2, 0, 1)[None])[0])
        return metrics, {"img": torch.cat([gt, rgb], dim=1) if gt.shape == rgb.shape else rgb}

    # ------------------------------------------------------------------ checkpoints
    def get_extra_state(self) -> dict:
        scene = self.current_scene()
        state: dict = {"adlift": type(self).__name__, "iterations_done": self.iterations_done}
        if scene is not None:
            state["scene"] = {k: v.detach().cpu() for k, v in scene.tensors().items()}
        run = self.run_state()
        if run is not None:
            state["run"] = run
        return state

    def set_extra_state(self, state: Any) -> None:
        if not isinstance(state, dict) or "adlift" not in state:
            return
        self.iterations_done = int(state.get("iterations_done", 0))
        if state.get("run") is not None and self.has_run():
            self.restore_run(state["run"])
        elif state.get("scene") is not None:  # inference (ns-viewer, ns-eval): show the saved scene
            self.scene = GaussianScene(**state["scene"]).to(self.device)

    def run_state(self) -> Optional[dict]:
        return None

    def has_run(self) -> bool:
        return self.run is not None

    def restore_run(self, state: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class AdLiftProtectModelConfig(AdLiftModelConfig):
    """adlift-protect: Lifted PGD (or a baseline) on the dataset's training views."""

    _target: Type = field(default_factory=lambda: AdLiftProtectModel)
    protect: ProtectConfig = field(default_factory=ProtectConfig)
    """Protection settings: the fields of `adlift protect` (`--pipeline.model.protect.eta`, ...,
    `pipeline.model.protect.loss:unet`); the rasteriser and background come from
    `--pipeline.model.backend` / `--pipeline.model.background`, checkpoints and progress from nerfstudio."""
    save_safeguard: bool = False
    """Also write the safeguard Gaussians alone as safeguard.ply."""
    format: Optional[SCENE_FORMATS.literal()] = None  # type: ignore[valid-type]
    """Scene format of the protected asset, protected.<its extension> (default: ply). A format with fewer SH
    bands gets the scene protected at the degree it holds; a lossy one is fitted with its quantiser in the loop
    (docs/FORMATS.md); the written file is decoded and measured (the manifest's export section)."""
    quantise_in_fit: bool = True
    """With a lossy --pipeline.model.format: fit with that format's quantiser in the loop (off: fit in float32
    and let the writer quantise)."""


class AdLiftProtectModel(AdLiftModel):
    """Holds the protection run (inplace: the scene's own Gaussians trained; split/sample: frozen raw copies
    + safeguard); one training iteration = one Lifted PGD unit; protected.ply is written in the published order."""

    config: AdLiftProtectModelConfig

    @property
    def asset_format(self) -> str:
        """The scene format protected.<ext> is written in (--pipeline.model.format, default ply)."""
        return self.config.format or "ply"

    def protect_config(self) -> ProtectConfig:
        cfg = dataclasses.replace(self.config.protect, checkpoint=None, progress=False,
                                  backend=self.config.backend, background=tuple(self.config.background))  # fmt: skip
        cfg.validate()
        return cfg

    def start_run(self) -> None:
        from adlift.attacks import AdversarialLoss, describe_loss, format_budget
        from adlift.protect import ProtectionRun

        if not self.config.instruction.strip():
            raise AdLiftError("--pipeline.model.instruction is empty; give the edit to protect against")
        from adlift.protect.asset_format import prepare_for_format

        self.scene, cfg, notes = prepare_for_format(self.scene, self.protect_config(), self.asset_format,
                                                    quantise=self.config.quantise_in_fit)  # fmt: skip
        for note in notes:
            CONSOLE.print(f"adlift-protect: {note}")
        self.editor = self.load_editor()
        self.loss = loss = AdversarialLoss(self.editor.surface, self.config.instruction, cfg.loss, cfg.eot)
        CONSOLE.print(
            f"adlift-protect: {self.scene.num_gaussians} Gaussians, {cfg.method}, loss {describe_loss(cfg.loss, cfg.eot)}, "
            f"eta {format_budget(cfg.eta)}, {len(self.train_cameras)} training views "
            f"({self.train_cameras.width}x{self.train_cameras.height}), "
            f"{len(self.novel_cameras) if self.novel_cameras is not None else 0} novel views"
        )
        self.run = ProtectionRun(self.scene, self.train_cameras.to(self.device), loss, cfg)

    @property
    def total_iterations(self) -> int:
        return self.run.total if self.run is not None else 0

    def current_scene(self) -> Optional[GaussianScene]:
        return self.run.protected_scene() if self.run is not None else self.scene

    def train_step(self, step: int) -> Dict[str, float]:
        if self.run is None or self.run.finished:
            return {}
        record = self.run.step()
        self.iterations_done = self.run.done
        out = {k: float(record[k]) for k in ("loss", "loss_start", "fit_l1", "psnr", "linf_255")
               if isinstance(record.get(k), (int, float)) and record.get(k) is not None}  # fmt: skip
        out["units_done"] = float(self.run.done)
        return out

    def run_state(self) -> Optional[dict]:
        return self.run.state.checkpoint_state() if self.run is not None else None

    def restore_run(self, state: dict) -> None:
        self.run.state.restore(state, "the nerfstudio checkpoint")
        self.iterations_done = self.run.done

    def finish(self, output_dir: Path) -> None:
        """Write protected.ply, manifest.json, transforms.json, preview.png (+ raw.ply) into output_dir."""
        from adlift.io.formats import write_scene
        from adlift.protect.output import protected_file_name, write_protection
        from adlift.io.json_safe import to_jsonable
        from adlift.protect.report import export_table, summary_table

        if self.run is None:
            return
        output_dir.mkdir(parents=True, exist_ok=True)
        raw_path = self.source_path
        if self.source_kind != "ply":
            raw_path = write_scene(self.scene, output_dir / "raw.ply", comments=[f"adlift: Gaussians of {self.source_path.name}"])
        result = self.run.result(self.novel_cameras)
        manifest = write_protection(
            output_dir, result, raw=self.scene, raw_path=raw_path, train_cameras=self.train_cameras,
            novel_cameras=self.novel_cameras, instruction=self.config.instruction,
            editor_metadata=self.editor.metadata(), config=self.run.config, cameras_source="nerfstudio datamanager",
            save_safeguard=self.config.save_safeguard, nerfstudio=_nerfstudio_info(self, complete=self.run.finished),
            asset_format=self.asset_format, loss=self.loss,
        )  # fmt: skip
        CONSOLE.print(summary_table(result.summary))
        if manifest.export:
            CONSOLE.print(export_table(to_jsonable(manifest.export)))
        if not self.run.finished:
            CONSOLE.print(f"[yellow]protection stopped after {self.run.done}/{self.run.total} units (max-num-iterations)")
        CONSOLE.print(f"adlift-protect: wrote {output_dir / protected_file_name(self.asset_format)}, manifest.json, "
                      "transforms.json, preview.png")  # fmt: skip


@dataclass
class AdLiftEditModelConfig(AdLiftModelConfig):
    """adlift-edit: Instruct-GS2GS-style editing of a (protected or raw) scene."""

    _target: Type = field(default_factory=lambda: AdLiftEditModel)
    edit: SceneEditConfig = field(default_factory=lambda: SceneEditConfig(progress=False))
    """Edit settings: the fields of `adlift edit --mode 3d` (Instruct-GS2GS defaults); the rasteriser and
    background come from `--pipeline.model.backend` / `--pipeline.model.background`."""


class AdLiftEditModel(AdLiftModel):
    """Holds the scene being edited; one training iteration = one Gaussian step (dataset update per round)."""

    config: AdLiftEditModelConfig

    def start_run(self) -> None:
        from adlift.editors import SceneEditRun

        if not self.config.instruction.strip():
            raise AdLiftError("--pipeline.model.instruction is empty; say what the edit should do")
        cfg = dataclasses.replace(self.config.edit, checkpoint=None, progress=False, backend=self.config.backend,
                                  background=tuple(self.config.background))  # fmt: skip
        self.editor = self.load_editor()
        CONSOLE.print(
            f"adlift-edit: {self.scene.num_gaussians} Gaussians, {cfg.rounds} round(s) x {cfg.gs_steps} steps, "
            f"{len(self.train_cameras)} views ({self.train_cameras.width}x{self.train_cameras.height})"
        )
        self.run = SceneEditRun(self.scene, self.train_cameras.to(self.device), self.editor, self.config.instruction, cfg)

    def train_step(self, step: int) -> Dict[str, float]:
        if self.run is None or self.run.finished:
            return {}
        info = self.run.step()
        self.iterations_done += 1
        out = {"round": float(info["round"]), "dataset_update": float(info["dataset_update"])}
        if info["loss"] == info["loss"]:  # not NaN
            out["loss"] = info["loss"]
        if info["round_record"] is not None:
            out["loss_after_round"] = float(info["round_record"]["loss_after_fit"])
        return out

    def current_scene(self) -> Optional[GaussianScene]:
        return self.run.scene() if self.run is not None else self.scene

    def run_state(self) -> Optional[dict]:
        return self.run.state_dict() if self.run is not None else None

    def restore_run(self, state: dict) -> None:
        self.run.load_state_dict(state, "the nerfstudio checkpoint")
        self.iterations_done = self.run.round * max(1, self.run.config.gs_steps)

    def finish(self, output_dir: Path) -> None:
        """Write edited.ply, before_after.png, original/, edited/ and edit.json into output_dir
        (:func:`adlift.editors.outputs.write_edit_outputs`, as `adlift edit --mode 3d`)."""
        from adlift.editors.outputs import write_edit_outputs
        from adlift.render import render_images

        if self.run is None:
            return
        scene = self.run.scene()
        cams = self.train_cameras.to(self.device)
        rendered = render_images(scene, cams, backend=self.config.backend, background=self.config.background).cpu()
        record = {"scene": str(self.source_path), "config": self.run.config, "history": self.run.history,
                  "complete": self.run.finished, "nerfstudio": _nerfstudio_info(self)}  # fmt: skip
        write_edit_outputs(output_dir, instruction=self.config.instruction, mode="3d",
                           editor_metadata=self.editor.metadata(), names=list(cams.names),
                           originals=self.run.originals.cpu(), edited=rendered, scene=scene, record=record,
                           source="adlift-edit (nerfstudio)")  # fmt: skip
        CONSOLE.print(f"adlift-edit: wrote {output_dir / 'edited.ply'}, before_after.png, edit.json")


def _nerfstudio_info(model: AdLiftModel, complete: Optional[bool] = None) -> NerfstudioInfo:
    """The ``nerfstudio`` section of manifest.json / edit.json: version, input scene, frame, iterations."""
    import nerfstudio

    return NerfstudioInfo(
        version=getattr(nerfstudio, "__version__", None) or _dist_version("nerfstudio"),
        scene_source=str(model.source_path) if model.source_path else None,
        scene_source_kind=model.source_kind,
        scene_frame=model.config.scene_frame,
        dataparser_transform=model.dataparser_transform.tolist() if model.dataparser_transform is not None else None,
        dataparser_scale=model.dataparser_scale,
        iterations=model.iterations_done,
        complete=complete,
    )


def _dist_version(name: str) -> Optional[str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


# ===================================================================================== pipeline
@dataclass
class AdLiftPipelineConfig(VanillaPipelineConfig):
    """splatfacto's datamanager + an AdLift model."""

    _target: Type = field(default_factory=lambda: AdLiftPipeline)


class AdLiftPipeline(VanillaPipeline):
    """Hands the dataset's cameras to the model; one training iteration = one step of its AdLift run."""

    def __init__(self, config, device, test_mode="val", world_size=1, local_rank=0, grad_scaler=None):
        super().__init__(config, device, test_mode=test_mode, world_size=world_size, local_rank=local_rank,
                         grad_scaler=grad_scaler)  # fmt: skip
        dm = self.datamanager
        outputs = dm.train_dataparser_outputs
        train = dm.train_dataset.cameras
        novel = dm.eval_dataset.cameras if dm.eval_dataset is not None and test_mode != "inference" else None
        names = (list(dm.train_dataset.image_filenames),
                 list(dm.eval_dataset.image_filenames) if novel is not None else [])  # fmt: skip
        self.model.attach(train, novel, names, outputs.dataparser_transform, outputs.dataparser_scale, test_mode)

    def get_train_loss_dict(self, step: int):
        metrics = self.model.train_step(step)
        loss_keys = ("loss", "fit_l1")
        loss_dict = {k: torch.tensor(v) for k, v in metrics.items() if k in loss_keys}
        metrics_dict = {k: torch.tensor(v) for k, v in metrics.items() if k not in loss_keys}
        if not loss_dict:
            loss_dict = {"loss": torch.tensor(0.0)}
        return {}, loss_dict, metrics_dict

    def get_eval_loss_dict(self, step: int):
        return {}, {"loss": torch.tensor(0.0)}, {}


# ====================================================================================== trainer
class AdLiftTrainer(Trainer):
    """nerfstudio's trainer, with the AdLift run as the loop body (no backward pass of its own).

    ``--load-dir``/``--load-checkpoint`` of a splatfacto run becomes the input scene; of an AdLift run
    of the same kind it resumes. The iteration count is capped at the run's remaining work.
    """

    config: "AdLiftTrainerConfig"

    def setup(self, test_mode: Literal["test", "val", "inference"] = "val") -> None:
        self._take_splatfacto_checkpoint()
        super().setup(test_mode=test_mode)
        model = self.pipeline.model
        remaining = max(0, model.total_iterations - model.iterations_done)
        self.config.max_num_iterations = min(self.config.max_num_iterations, remaining)
        from nerfstudio.utils import writer

        writer.GLOBAL_BUFFER["max_iter"] = self._start_step + self.config.max_num_iterations  # ETA and % done

    def _take_splatfacto_checkpoint(self) -> None:
        source = None
        if self.config.load_checkpoint is not None:
            source = Path(self.config.load_checkpoint)
        elif self.config.load_dir is not None:
            source = find_checkpoint(self.config.load_dir, self.config.load_step)
        if source is None:
            return
        from adlift.io.checkpoint import load_checkpoint

        state = load_checkpoint(source, "nerfstudio checkpoint")  # weights_only: pickled objects are refused unrun
        if isinstance(state, dict) and isinstance(state.get("pipeline"), dict) and is_splatfacto_state(state["pipeline"]):
            CONSOLE.print(f"adlift: input scene = the Gaussians of the splatfacto checkpoint {source}")
            self.config.pipeline.model.scene = source
            self.config.load_dir = self.config.load_checkpoint = None
            self.config.save_config()  # record the scene actually used

    def train_iteration(self, step: int):
        _, loss_dict, metrics_dict = self.pipeline.get_train_loss_dict(step=step)
        loss = sum(loss_dict.values(), torch.tensor(0.0))
        return loss, loss_dict, metrics_dict

    def eval_iteration(self, step: int) -> None:
        """No per-step evaluation: `ns-adlift-evaluate` / `adlift evaluate` evaluate the result."""

    def _after_train(self) -> None:
        tic = time.perf_counter()
        self.pipeline.model.finish(self.base_dir)
        CONSOLE.print(f"adlift: results in {self.base_dir} ({time.perf_counter() - tic:.1f} s)")
        super()._after_train()


@dataclass
class AdLiftTrainerConfig(TrainerConfig):
    """TrainerConfig running :class:`AdLiftTrainer`."""

    _target: Type = field(default_factory=lambda: AdLiftTrainer)

"""Instruct-GS2GS-style 3D editing of a GaussianScene (Vachha & Haque 2024; after Instruct-NeRF2NeRF).

Iterative dataset update, in ``rounds``:

1. render every training view of the current scene;
2. edit each render with InstructPix2Pix the way Instruct-GS2GS does
   (:meth:`~adlift.editors.ip2p.IP2PEditor.edit_from_render`): noise its latent to a timestep drawn
   uniformly in [0.70, 0.98] T, denoise in 20 DDIM steps conditioned on the *original* view with
   text guidance 12.5 and image guidance 1.5;
3. replace the training targets by the edits;
4. optimise all Gaussian parameters for ``gs_steps`` steps (one random training view per step) on
   the 3DGS photometric loss (1 - 0.2) L1 + 0.2 D-SSIM with Adam and per-parameter learning rates
   (Instruct-GS2GS' splatfacto settings: means 1.6e-4 times the scene extent, decaying
   exponentially towards 1.6e-6 over 30k steps; SH DC 2.5e-3, SH rest 2.5e-3/20, opacity 0.05,
   scales 5e-3, rotations 1e-3; eps 1e-15). Instruct-GS2GS fine-tunes a converged splatfacto
   checkpoint whose means schedule has already decayed; set ``lr_means = lr_means_final`` to mimic
   that exactly.

Defaults are Instruct-GS2GS': 2500 steps between dataset updates and 7500 iterations, i.e. 3 rounds.
Differences: all views are edited at the start of a round (Instruct-GS2GS edits one per step at the
start of each cycle, while already training), the loss is L1 + D-SSIM (Instruct-GS2GS adds LPIPS,
whose weights we cannot ship offline), there is no densification, and the "original" views are
renders of the input scene unless real photos are passed.

With ``checkpoint`` set, the state is saved after every round and a later call with the same
checkpoint resumes after the last finished round, giving the same result as an uninterrupted run.
Checkpoints hold only tensors, numbers and strings (loaded with ``weights_only=True``, see
:mod:`adlift.io.checkpoint`) and a fingerprint of the run (:meth:`SceneEditRun.fingerprint`: input
scene and original views, cameras, instruction, editor, every setting that changes the result); a
checkpoint of another run is refused.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Tuple

import torch
import tyro
from tqdm.auto import tqdm

from adlift.cameras import Cameras, scene_extent
from adlift.editors.ip2p import GS2GS_GUIDANCE
from adlift.editors.photometric import l1_dssim_loss
from adlift.errors import AdLiftError
from adlift.io.checkpoint import load_checkpoint, save_checkpoint
from adlift.io.checksum import tensors_sha256
from adlift.scene import GaussianScene

if TYPE_CHECKING:
    from adlift.editors.ip2p import IP2PEditor

#: GaussianScene fields in optimiser order; "sh" is split into its DC and rest coefficients.
_PARAM_NAMES = ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest")


#: Bump when the checkpoint layout or the fingerprint changes.
CHECKPOINT_VERSION = 2

#: SceneEditConfig fields that do not change the result of the rounds a checkpoint holds (left out of the
#: fingerprint): where it is saved, progress bars, the rasteriser, batching (per-view seeds) and the number
#: of rounds (round r is the same whatever follows it, so a finished run can be resumed with more rounds).
_NOT_FINGERPRINTED = ("checkpoint", "progress", "backend", "batch_size", "rounds")


@dataclasses.dataclass
class SceneEditConfig:
    """Settings of :func:`edit_scene`; defaults follow Instruct-GS2GS."""

    rounds: int = 3
    """Dataset updates: each edits every training view, then fits the scene for `gs_steps` steps
    (Instruct-GS2GS: 7500 iterations / 2500 = 3)."""

    gs_steps: int = 2500
    """Optimisation steps between dataset updates (Instruct-GS2GS `gs_steps`)."""

    steps: int = 20
    """Diffusion (denoising) steps of each InstructPix2Pix edit (3d: DDIM steps of a dataset update)."""

    guidance_scale: Optional[float] = None
    """Text guidance of the edits; default: 12.5 in 3d (Instruct-GS2GS), 7.5 in 2d (InstructPix2Pix)."""

    image_guidance_scale: float = 1.5
    """Image guidance of the edits, towards the original view (Instruct-GS2GS: 1.5)."""

    t_lower: float = 0.70
    """Lowest noise level of an edit, as a fraction of the diffusion training timesteps."""

    t_upper: float = 0.98
    """Highest noise level of an edit, as a fraction of the diffusion training timesteps."""

    ssim_lambda: float = 0.2
    """Weight of D-SSIM in the photometric loss (1 - lambda) L1 + lambda D-SSIM (3DGS: 0.2)."""

    lr_means: float = 1.6e-4
    """Initial learning rate of the means, multiplied by the scene extent (camera-centre radius x 1.1)."""

    lr_means_final: float = 1.6e-6
    """Learning rate the means decay towards exponentially (times the extent)."""

    lr_means_decay_steps: int = 30000
    """Steps over which the means' learning rate would reach `lr_means_final` (splatfacto: 30000)."""

    lr_sh_dc: float = 2.5e-3
    """Learning rate of the DC spherical-harmonics coefficients."""

    lr_sh_rest: float = 2.5e-3 / 20
    """Learning rate of the higher-order spherical-harmonics coefficients."""

    lr_opacity: float = 0.05
    """Learning rate of the opacity logits."""

    lr_scales: float = 5e-3
    """Learning rate of the log-scales."""

    lr_quats: float = 1e-3
    """Learning rate of the rotation quaternions."""

    background: tyro.conf.Suppress[Tuple[float, float, float]] = (0.0, 0.0, 0.0)
    """Background colour of the renders, R G B in [0, 1] (the command line sets it from the render options)."""

    backend: tyro.conf.Suppress[str] = "auto"
    """Render backend (see adlift.render); auto = the fastest available (set from the render options)."""

    seed: int = 0
    """Seed of the edits (timesteps, noise) and of the order in which views are trained."""

    batch_size: int = 4
    """Views edited per InstructPix2Pix batch (does not change the result: every view has its own seed)."""

    checkpoint: tyro.conf.Suppress[Optional[Path]] = None
    """File to save the state to after every round and to resume from if it exists (set by the caller)."""

    progress: tyro.conf.Suppress[bool] = True
    """Show progress bars (set by the caller)."""

    @property
    def text_guidance(self) -> float:
        """The text guidance of the 3D edit's dataset updates: ``guidance_scale``, else Instruct-GS2GS' 12.5."""
        return GS2GS_GUIDANCE if self.guidance_scale is None else float(self.guidance_scale)

    def validate(self) -> None:
        """AdLiftError for settings that cannot work."""
        if self.rounds < 1 or self.gs_steps < 0 or self.steps < 1:
            raise AdLiftError(
                f"need rounds >= 1, gs-steps >= 0 and steps >= 1; got rounds={self.rounds}, "
                f"gs-steps={self.gs_steps}, steps={self.steps}"
            )
        if not 0.0 <= self.t_lower <= self.t_upper <= 1.0:
            raise AdLiftError(f"need 0 <= t_lower <= t_upper <= 1, got {self.t_lower}, {self.t_upper}")
        if not 0.0 <= self.ssim_lambda <= 1.0:
            raise AdLiftError(f"ssim_lambda must be in [0, 1], got {self.ssim_lambda}")
        if self.batch_size < 1:
            raise AdLiftError(f"batch-size must be >= 1, got {self.batch_size}")

    def fingerprint(self) -> dict:
        """The settings that change the result (JSON types; guidance resolved), for checkpoints."""
        from adlift.io.json_safe import to_jsonable

        d = to_jsonable(self)
        for key in _NOT_FINGERPRINTED:
            d.pop(key, None)
        d["guidance_scale"] = self.text_guidance
        return d


@dataclasses.dataclass
class SceneEditResult:
    """What :func:`edit_scene` returns."""

    scene: GaussianScene
    """The edited scene (detached, on the input scene's device)."""

    targets: torch.Tensor  # [C, 3, H, W]
    """The edited training targets of the last round, in [0, 1]."""

    originals: torch.Tensor  # [C, 3, H, W]
    """The original views the edits were conditioned on."""

    history: list[dict]
    """One entry per round: the round, the photometric loss (mean over views) to that round's
    targets before and after fitting, and the seconds spent."""


def make_optimizer(params: dict[str, torch.Tensor], config: SceneEditConfig, extent: float) -> torch.optim.Adam:
    """Adam over the split scene parameters with 3DGS-style per-parameter learning rates (eps 1e-15).

    Each parameter group carries its field name under ``"name"``; the means' rate is scaled by ``extent``.
    """
    lrs = {
        "means": config.lr_means * extent,
        "quats": config.lr_quats,
        "log_scales": config.lr_scales,
        "opacity_logits": config.lr_opacity,
        "sh_dc": config.lr_sh_dc,
        "sh_rest": config.lr_sh_rest,
    }
    groups = [{"params": [params[k]], "lr": lrs[k], "name": k} for k in _PARAM_NAMES if params[k].numel() > 0]
    return torch.optim.Adam(groups, eps=1e-15)


def _split_params(scene: GaussianScene) -> dict[str, torch.Tensor]:
    sh = scene.sh.detach()
    return {
        "means": scene.means.detach().clone(),
        "quats": scene.quats.detach().clone(),
        "log_scales": scene.log_scales.detach().clone(),
        "opacity_logits": scene.opacity_logits.detach().clone(),
        "sh_dc": sh[:, :1].clone(),  # [N, 1, 3]
        "sh_rest": sh[:, 1:].clone(),  # [N, K-1, 3]
    }


def _scene_from(params: dict[str, torch.Tensor], check_finite: bool = False) -> GaussianScene:
    return GaussianScene(
        params["means"],
        params["quats"],
        params["log_scales"],
        params["opacity_logits"],
        torch.cat([params["sh_dc"], params["sh_rest"]], dim=1),
        check_finite=check_finite,
    )


def _render_views(scene: GaussianScene, views: list[Cameras], config: SceneEditConfig) -> torch.Tensor:
    from adlift.render import render

    with torch.no_grad():
        return torch.cat(
            [render(scene, v, backend=config.backend, background=config.background).rgb for v in views]
        ).clamp(0.0, 1.0)  # [C, 3, H, W]


def _mean_loss(scene: GaussianScene, views: list[Cameras], targets: torch.Tensor, config: SceneEditConfig) -> float:
    rgb = _render_views(scene, views, config)
    with torch.no_grad():
        return float(l1_dssim_loss(rgb, targets.to(rgb), config.ssim_lambda))


class GaussianFitter:
    """Every Gaussian parameter of a scene under Adam with 3DGS' per-parameter learning rates
    (:func:`make_optimizer`, the means' rate decaying exponentially with the global step), fitted to
    target views with the photometric loss :func:`~adlift.editors.photometric.l1_dssim_loss`.

    The fitting half of both 3D editors: :class:`SceneEditRun` (after each dataset update) and
    :class:`~adlift.editors.dge.DGERun` (once, to the multi-view-consistent edits). Uses the
    ``ssim_lambda``, ``lr_*``, ``backend`` and ``background`` fields of a :class:`SceneEditConfig`.
    """

    def __init__(self, scene: GaussianScene, cameras: Cameras, config: SceneEditConfig):
        self.config = config
        extent = scene_extent(cameras, scene)
        self.params = {k: v.requires_grad_(True) for k, v in _split_params(scene).items()}
        self.optimizer = make_optimizer(self.params, config, extent)
        self._means_lr = config.lr_means * extent
        self._means_group = next(g for g in self.optimizer.param_groups if g["name"] == "means")
        self._decay = math.log(config.lr_means_final / config.lr_means) / max(1, config.lr_means_decay_steps)

    def scene(self, check_finite: bool = False) -> GaussianScene:
        """The current scene (detached)."""
        return _scene_from({k: v.detach() for k, v in self.params.items()}, check_finite=check_finite)

    def step(self, view: Cameras, target: torch.Tensor, global_step: int) -> float:
        """One Adam step of all parameters on one view (``target`` [1, 3, H, W]); returns its loss."""
        from adlift.render import render

        config = self.config
        self._means_group["lr"] = self._means_lr * math.exp(self._decay * min(global_step, config.lr_means_decay_steps))
        out = render(_scene_from(self.params), view, backend=config.backend, background=config.background)
        loss = l1_dssim_loss(out.rgb, target, config.ssim_lambda)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def mean_loss(self, views: list[Cameras], targets: torch.Tensor) -> float:
        """The photometric loss of the current scene to ``targets`` [C, 3, H, W], over all views."""
        return _mean_loss(_scene_from(self.params), views, targets, self.config)

    def state_dict(self) -> dict:
        """Parameters and optimizer state (tensors, numbers, lists and dicts only)."""
        return {"params": {k: v.detach().cpu() for k, v in self.params.items()}, "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (ValueError/KeyError for a state of another scene; the caller rewords)."""
        params = {k: state["params"][k].to(self.params[k].device, self.params[k].dtype) for k in self.params}
        if any(params[k].shape != self.params[k].shape for k in params):
            raise ValueError("tensor shapes differ")
        self.optimizer.load_state_dict(state["optimizer"])
        with torch.no_grad():
            for k, v in params.items():
                self.params[k].copy_(v)


class SceneEditRun:
    """An Instruct-GS2GS-style edit driven one Gaussian optimisation step at a time.

    :func:`edit_scene` runs it to the end; a host training loop (nerfstudio's trainer) calls
    :meth:`step` once per iteration: the first step of every round edits all training views
    (the dataset update), every step then takes one Adam step on one random view.
    """

    def __init__(self, scene: GaussianScene, cameras: Cameras, editor: IP2PEditor, instruction: str,
                 config: SceneEditConfig | None = None, *,
                 originals: torch.Tensor | None = None):  # fmt: skip
        config = config or SceneEditConfig()
        config.validate()
        if config.guidance_scale is None:  # the editor's own 3D default (Instruct-GS2GS' 12.5 for IP2P)
            config = dataclasses.replace(config, guidance_scale=editor.default_guidance("3d"))
        if not isinstance(scene, GaussianScene) or scene.num_gaussians == 0:
            raise AdLiftError("edit_scene needs a non-empty GaussianScene")
        if len(cameras) == 0:
            raise AdLiftError("edit_scene needs at least one training camera")
        self.config, self.editor, self.instruction = config, editor, instruction
        self.device, self.dtype = scene.device, scene.dtype
        self.views = [cameras[i].to(self.device) for i in range(len(cameras))]
        n_views = len(self.views)
        given = originals  # photos change the result; renders of the scene are covered by its hash
        if originals is None:
            originals = _render_views(scene.detach(), self.views, config)
        elif tuple(originals.shape) != (n_views, 3, cameras.height, cameras.width):
            raise AdLiftError(
                f"originals must have shape [C={n_views}, 3, H={cameras.height}, W={cameras.width}], "
                f"got {list(originals.shape)}"
            )
        self.originals = originals.to(self.device, self.dtype)
        self._fingerprint = run_fingerprint(scene, cameras, given, editor, instruction, config.fingerprint())
        self.fitter = GaussianFitter(scene, cameras, config)
        self.params, self.optimizer = self.fitter.params, self.fitter.optimizer
        self.targets = self.originals.clone()
        self.history: list[dict] = []
        self.round = 0  # rounds finished
        self.k = 0  # steps done in the current round (0: its dataset update is still to come)
        self._order: torch.Generator | None = None
        self._tic = 0.0
        self._loss_before = float("nan")
        self.last_loss = float("nan")

    @property
    def total(self) -> int:
        """Iterations of the whole edit: one per Gaussian step (at least one per round); the name
        :class:`~adlift.protect.ProtectionRun` uses for its work units, so host loops treat both alike."""
        return self.config.rounds * max(1, self.config.gs_steps)

    total_steps = total

    @property
    def finished(self) -> bool:
        return self.round >= self.config.rounds

    def scene(self) -> GaussianScene:
        """The current (detached) scene."""
        return _scene_from({k: v.detach() for k, v in self.params.items()})

    def update_dataset(self) -> None:
        """Steps 1-3 of the current round: edit every current render, conditioned on its original."""
        import time

        config, r, n_views = self.config, self.round, len(self.views)
        self._tic = time.perf_counter()
        current = _render_views(_scene_from(self.params).detach(), self.views, config)
        edited = []
        bs = max(1, config.batch_size)
        for s in tqdm(range(0, n_views, bs), desc=f"round {r + 1}/{config.rounds}: editing views", unit="batch",
                      disable=not config.progress, leave=False):  # fmt: skip
            edited.append(
                self.editor.edit_from_render(
                    current[s : s + bs],
                    self.originals[s : s + bs],
                    self.instruction,
                    t_range=(config.t_lower, config.t_upper),
                    steps=config.steps,
                    guidance_scale=config.text_guidance,
                    image_guidance_scale=config.image_guidance_scale,
                    seed=[config.seed + r * n_views + i for i in range(s, min(s + bs, n_views))],
                    batch_size=bs,
                ).to(self.device, self.dtype)
            )
        self.targets = torch.cat(edited)  # [C, 3, H, W]
        self._loss_before = _mean_loss(_scene_from(self.params), self.views, self.targets, config)
        self._order = torch.Generator().manual_seed(config.seed * 1000003 + r)

    def fit_step(self) -> float:
        """Step 4, once: one Adam step of all Gaussian parameters on one random view; returns its loss."""
        global_step = self.round * self.config.gs_steps + self.k
        i = int(torch.randint(len(self.views), (1,), generator=self._order))
        self.last_loss = self.fitter.step(self.views[i], self.targets[i : i + 1], global_step)
        return self.last_loss

    def end_round(self) -> dict:
        """Close the current round: measure, record it in the history, advance."""
        import time

        config = self.config
        loss_after = _mean_loss(_scene_from(self.params), self.views, self.targets, config)
        if not math.isfinite(loss_after):
            raise AdLiftError(f"3D edit diverged in round {self.round + 1} (loss {loss_after}); lower the learning rates")
        record = {"round": self.round + 1, "loss_before_fit": self._loss_before, "loss_after_fit": loss_after,
                  "gs_steps": config.gs_steps, "seconds": time.perf_counter() - self._tic}  # fmt: skip
        self.history.append(record)
        self.round += 1
        self.k = 0
        return record

    def step(self) -> dict:
        """One iteration: the dataset update if a round starts, one fitting step, the round's end if due.

        Returns {"round", "step", "loss" (of this step, NaN when gs_steps is 0), "dataset_update",
        "round_record" (the history entry when the round ended, else None)}.
        """
        if self.finished:
            raise AdLiftError("the 3D edit has no steps left")
        updated = self.k == 0
        if updated:
            self.update_dataset()
        loss = float("nan")
        if self.config.gs_steps > 0:
            loss = self.fit_step()
            self.k += 1
        info = {"round": self.round + 1, "step": self.k, "loss": loss, "dataset_update": updated, "round_record": None}
        if self.k >= self.config.gs_steps:
            info["round_record"] = self.end_round()
        return info

    def fingerprint(self) -> dict:
        """What a checkpoint must share with this run to resume it: the checkpoint version, the input
        scene and original views (hashes), the cameras (hash of viewmats and intrinsics, names, size),
        the instruction, the editor (name, model, dtype) and every setting that changes the result."""
        return self._fingerprint

    def state_dict(self) -> dict:
        """Everything needed to resume after a finished round: tensors, numbers, strings, lists, dicts only."""
        return {
            "fingerprint": self.fingerprint(),
            "params": {k: v.detach().cpu() for k, v in self.params.items()},
            "optimizer": self.optimizer.state_dict(),
            "targets": self.targets.detach().cpu(),
            "originals": self.originals.detach().cpu(),
            "history": self.history,
            "round": self.round,
            "instruction": self.instruction,
        }

    def load_state_dict(self, state: dict, source: object = "the checkpoint") -> None:
        """Continue from :meth:`state_dict` of the same run; AdLiftError for a checkpoint of another run."""
        if not isinstance(state, dict) or state.get("fingerprint") != self.fingerprint():
            raise AdLiftError(
                f"{source} is a checkpoint of another edit (scene, cameras, instruction, editor or settings "
                "differ); delete it or choose another output directory"
            )
        try:
            params = {k: state["params"][k].to(self.device, self.dtype) for k in self.params}
            targets, originals = state["targets"].to(self.device), state["originals"].to(self.device)
            history, done = list(state["history"]), int(state["round"])
            if any(params[k].shape != self.params[k].shape for k in params) or targets.shape != self.targets.shape:
                raise ValueError("tensor shapes differ")
            self.optimizer.load_state_dict(state["optimizer"])
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as e:
            why = " ".join(str(e).split())[:120]
            raise AdLiftError(f"{source} is damaged ({e.__class__.__name__}: {why}); delete it to start over") from None
        with torch.no_grad():
            for k, v in params.items():
                self.params[k].copy_(v)
        self.targets, self.originals = targets, originals
        self.history, self.round, self.k = history, done, 0


def edit_scene(
    scene: GaussianScene,
    cameras: Cameras,
    editor: IP2PEditor,
    instruction: str,
    config: SceneEditConfig | None = None,
    *,
    originals: torch.Tensor | None = None,  # [C, 3, H, W] in [0, 1]; default: renders of `scene`
) -> SceneEditResult:
    """Edit ``scene`` with ``instruction`` from the training views ``cameras`` (see the module docstring)."""
    config = config or SceneEditConfig()
    run = SceneEditRun(scene, cameras, editor, instruction, config, originals=originals)
    ckpt = Path(config.checkpoint) if config.checkpoint is not None else None
    if ckpt is not None and ckpt.exists():
        run.load_state_dict(load_checkpoint(ckpt, "3D edit checkpoint"), ckpt)

    while not run.finished:
        run.update_dataset()
        bar = tqdm(range(config.gs_steps), desc=f"round {run.round + 1}/{config.rounds}: fitting", unit="step",
                   disable=not config.progress, leave=False)  # fmt: skip
        for k in bar:
            run.k = k
            loss = run.fit_step()
            if k % 10 == 0:
                bar.set_postfix(loss=f"{loss:.4f}")
        run.end_round()
        if ckpt is not None:
            save_checkpoint(ckpt, run.state_dict())

    result_scene = _scene_from({k: v.detach() for k, v in run.params.items()}, check_finite=True)
    return SceneEditResult(result_scene, run.targets.detach(), run.originals.detach(), run.history)


def run_fingerprint(scene: GaussianScene, cameras: Cameras, originals: torch.Tensor | None, editor, instruction: str,
                    settings: dict, version: int = CHECKPOINT_VERSION) -> dict:  # fmt: skip
    """What a checkpoint of a 3D edit must share with the run resuming it (see :meth:`SceneEditRun.fingerprint`):
    ``version``, hashes of the scene and given originals, the cameras, the instruction, the editor and
    ``settings`` (JSON types: every setting that changes the result)."""
    meta = editor.metadata() if hasattr(editor, "metadata") else {}
    return {
        "version": version,
        "scene": tensors_sha256(*scene.tensors().values()),
        "originals": "renders" if originals is None else tensors_sha256(originals),
        "cameras": {"hash": tensors_sha256(cameras.viewmats, cameras.Ks), "names": list(cameras.names),
                    "size": [int(cameras.width), int(cameras.height)]},  # fmt: skip
        "instruction": instruction,
        "editor": {k: meta.get(k) for k in ("editor", "model", "dtype")},
        "config": settings,
    }

"""The state every protection method shares, and the loop that runs, checkpoints and resumes it.

A method (:mod:`adlift.protect.lifted`, :mod:`adlift.protect.baselines`) is a list of *work units*
(e.g. "round 1, view 7") and a function doing one unit on a :class:`ProtectionState`. The
engine sorts the input scene into the published order (so the input file's order changes nothing),
renders the raw views once, creates the safeguard, runs the units in order with a
progress bar, saves a checkpoint (atomically) every few units, and resumes from one: all random
draws come from one generator whose state is checkpointed, so an interrupted and resumed run
ends bit-identical to an uninterrupted one.

Under ``torchrun`` (:mod:`adlift.distributed`) every rank holds the same state and runs the same units:
a unit's per-view work (PGD targets, per-view measurements) is split between the ranks
(:meth:`ProtectionState.per_view`), and every fitting gradient is a sum of the gradients of fixed
groups of views (:meth:`ProtectionState.view_groups`), accumulated in float64 and summed over the
ranks (:meth:`ProtectionState.accumulate_gradient`), so every rank takes the same optimiser step. Per-view randomness comes from generators keyed by (seed, stage,
round, view) (:meth:`ProtectionState.view_generator`), never from which rank does the view: the same
settings give the same protected scene on any number of processes (up to the order of float64 sums).
Rank 0 alone reads and writes the checkpoint (the others get its bytes) and draws the progress bar.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from adlift import distributed
from adlift.attacks.losses import AdversarialLoss
from adlift.cameras import Cameras
from adlift.errors import AdLiftError
from adlift.protect.publish import publish_order
from adlift.protect.quantise import FormatQuantiser, optimiser_steps
from adlift.protect.safeguard import SafeguardParams, init_safeguard
from adlift.scene import GaussianScene

if TYPE_CHECKING:
    from adlift.protect.config import ProtectConfig
    from adlift.protect.methods import ProtectionMethod

#: Bumped when the checkpoint layout changes (2: per-kind loss configs, EOT beside the loss, weights_only;
#: 3: the safeguard's rows in the published order of the input, inplace init; 4: view batches, per-view
#: generators, gradients of groups of views summed in float64).
CHECKPOINT_VERSION = 4

#: Record fields shown on the progress bar: the adversarial loss of the view's result (lifted-pgd, fit2d:
#: of the PGD target the safeguard is fitted to; direct: of the protected render), then PSNR and
#: L-infinity (/255) of the protected render against the raw one.
PROGRESS_FIELDS = ("loss", "psnr", "linf_255")


def budget_excess(rgb: torch.Tensor, raw: torch.Tensor, eta: float) -> torch.Tensor:
    """Per image [B]: the mean amount by which |rgb - raw| ([B, 3, H, W]) exceeds eta (0 inside the
    budget); differentiable."""
    return torch.relu((rgb - raw).abs() - eta).mean(dim=(1, 2, 3))


def scene_checksum(scene: GaussianScene) -> str:
    """A short hash of a scene's parameters (detects a checkpoint of another scene)."""
    h = hashlib.sha256()
    for t in scene.tensors().values():
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class ProtectionState:
    """Everything a protection method reads and changes."""

    def __init__(self, raw: GaussianScene, cameras: Cameras, loss: AdversarialLoss, config: ProtectConfig):
        from adlift.cameras import scene_extent
        from adlift.render import render

        config.validate()
        if len(cameras) == 0:
            raise AdLiftError("protection needs at least one training camera")
        self.group = distributed.current()
        self.config = config = config.for_ranks(self.group.world_size)
        self.loss = loss
        # Work in the published order (a function of the values only), so that the input file's order
        # changes nothing: a permuted copy of a scene gives the same run, bit for bit, and the same file.
        self.input_order = publish_order(raw)  # [N]: working index -> index in the input scene
        self.raw = raw.detach().subset(self.input_order)
        self.device = raw.device
        self.cameras = cameras.to(self.device)
        self.views = [self.cameras[i] for i in range(len(cameras))]
        self.background = torch.tensor(config.background, dtype=raw.dtype, device=self.device)
        self._render = render
        with torch.no_grad():
            self.raw_renders = torch.cat([self.render(self.raw, [i]) for i in range(len(self.views))]).clamp(0, 1)
        loss.prepare(self.raw_renders, self.cameras)  # the loss's context (dge: its key views), here for every method
        init = init_safeguard(self.raw, self.cameras, config.safeguard, backend=config.backend)
        self.frozen = init.frozen
        self.source_index = self.input_order[init.source_index]  # indices of the input scene
        self.params = SafeguardParams(init.safeguard, config.safeguard, scene_extent(self.cameras, self.raw))
        # The written format's quantiser in the loop (adlift.protect.quantise): what the engine renders is the file's.
        self.quantiser = (FormatQuantiser(config.quantise_as, config.quantise_every, dict(config.quantise_options),
                                          eta=config.eta) if config.quantise_as else None)  # fmt: skip
        self.generator = torch.Generator().manual_seed(config.seed)
        self.targets: dict[int, torch.Tensor] = {}  # view index -> [1, 3, H, W] target image
        self.history: list[dict] = []
        self.units_done = 0
        self.seconds = 0.0

    # ------------------------------------------------------------------ rendering
    def render(self, scene: GaussianScene, views: list[int], frozen: GaussianScene | None = None) -> torch.Tensor:
        """RGB of ``scene`` (drawn with ``frozen``, which gets no gradients) from training views
        ``views``: [len(views), 3, H, W] (not clamped)."""
        cams = self.cameras[views] if len(views) > 1 else self.views[views[0]]
        bg = self.background.expand(len(views), 3)
        return self._render(scene, cams, backend=self.config.backend, background=bg, frozen=frozen).rgb

    @property
    def has_frozen(self) -> bool:
        """Whether there is a frozen set (split/sample); inplace trains every Gaussian and has none."""
        return self.frozen.num_gaussians > 0

    def protected_scene(self) -> GaussianScene:
        """Frozen raw Gaussians (if any) followed by the current safeguard (gradients reach the safeguard).

        This is the engine's working order; the published file is reordered by
        :func:`adlift.protect.publish.published_scene`."""
        if not self.has_frozen:
            return self.params.scene()
        return GaussianScene.concat([self.frozen, self.params.scene()])

    def render_safeguarded(self, views: list[int]) -> torch.Tensor:
        """RGB of the protected scene, gradients reaching the safeguard only: [len(views), 3, H, W].

        The same image as rendering :meth:`protected_scene`; with a frozen set (split/sample) the
        ``cuda`` backend caches the frozen Gaussians' projection per view and skips their gradient
        work. inplace has no frozen set: the scene is rendered alone (no ``frozen=``). With
        ``config.quantise_as``, both are the values the written file will hold (straight-through:
        :mod:`adlift.protect.quantise`)."""
        scene, frozen = self.params.scene(), self.frozen
        if self.quantiser is not None:
            frozen, scene = self.quantiser(frozen, scene, optimiser_steps(self.params.optimizer))
        return self.render(scene, views, frozen=frozen if self.has_frozen else None)

    def render_protected(self, views: list[int]) -> torch.Tensor:
        """Detached, clamped render of the protected scene: [len(views), 3, H, W]."""
        with torch.no_grad():
            return self.render_safeguarded(views).clamp(0.0, 1.0)

    # ------------------------------------------------------------------ shared steps
    def view_generator(self, stage: str, round_index: int, view: int) -> torch.Generator:
        """The random draws of one view's work (PGD noise, EOT), keyed by seed, stage, round and view: the
        same whichever rank does the view and whatever else the run does."""
        key = f"{self.config.seed}:{stage}:{round_index}:{view}".encode()
        return torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1)

    def replay_views(self, current: Sequence[int], pool: list[int]) -> list[int]:
        """``current`` plus up to ``replay`` random other views of ``pool`` that have targets (one more
        when ``current`` is empty)."""
        others = [v for v in pool if v not in current and v in self.targets]
        take = min(self.config.replay + (not current), len(others))
        picks = torch.randperm(len(others), generator=self.generator)[:take].tolist() if take else []
        return list(current) + [others[p] for p in picks]

    def view_groups(self, views: Sequence[int]) -> list[list[int]]:
        """``views`` dealt round-robin into ``view_batch`` groups (empty ones dropped): the pieces of work
        whose gradients are computed whole (one batched render each) and summed; fixed by the settings,
        not by the number of processes."""
        k = self.config.view_batch or 1
        return [group for group in (list(views[i::k]) for i in range(k)) if group]

    def accumulate_gradient(
        self, views: Sequence[int], group_loss: Callable[[list[int]], tuple[torch.Tensor, torch.Tensor]]
    ) -> float:
        """Set the safeguard's gradients to the gradient of the sum over :meth:`view_groups` of
        ``group_loss(group)[0]``.

        Each rank differentiates its share of the groups, one at a time, accumulating in float64; the
        sums are added over the ranks, so every rank holds the same gradient, and the same settings give
        the same gradient on any number of processes. Returns the sum of ``group_loss(group)[1]`` (a
        number to report)."""
        params = [p for group in self.params.optimizer.param_groups for p in group["params"]]
        sizes = [p.numel() for p in params]
        flat = torch.zeros(sum(sizes) + 1, dtype=torch.float64, device=self.device)
        for views_of_group in distributed.shard(self.view_groups(views), self.group):
            objective, report = group_loss(views_of_group)
            grads = torch.autograd.grad(objective, params, allow_unused=True)
            for g, chunk in zip(grads, flat[:-1].split(sizes)):
                if g is not None:
                    chunk += g.reshape(-1)
            flat[-1] += report.detach().double()
        distributed.all_reduce_sum_(flat, self.group, "summing gradients")
        for p, chunk in zip(params, flat[:-1].split(sizes)):
            p.grad = chunk.view_as(p).to(p.dtype)
        return float(flat[-1])

    def fit(self, current: Sequence[int], steps: int, pool: list[int] | None = None) -> float:
        """Image-to-Gaussian fitting of the safeguard only: ``steps`` Adam steps; returns the last L1.

        Each step renders the ``current`` views and replayed ones, and minimises their mean L1 to their
        targets plus ``budget_weight`` x the excess over the budget around the raw renders.
        """
        pool = pool if pool is not None else sorted(self.targets)
        last = float("nan")
        opt = self.params.optimizer
        for _ in range(steps):
            views = self.replay_views(current, pool)
            if not views:
                break

            def group_loss(group: list[int], n: int = len(views)) -> tuple[torch.Tensor, torch.Tensor]:
                rgb = self.render_safeguarded(group)  # [G, 3, H, W]
                target = torch.cat([self.targets[v] for v in group])
                l1 = (rgb - target).abs().mean(dim=(1, 2, 3))  # [G]: per view
                excess = budget_excess(rgb, self.raw_renders[group], self.config.eta)  # [G]
                return (l1 + self.config.budget_weight * excess).sum() / n, l1.sum() / n

            last = self.accumulate_gradient(views, group_loss)
            opt.step()
        return last

    def per_view(self, views: Sequence[int], width: int, work: Callable[[int], torch.Tensor]) -> torch.Tensor:
        """``work(v)`` (``width`` numbers) for every view, each rank doing its share: [len(views), width]
        float64 with every view's row on every rank (float32 values pass through float64 exactly)."""
        rows = torch.zeros(len(views), width, dtype=torch.float64, device=self.device)
        for i in distributed.shard(range(len(views)), self.group):
            rows[i] = work(views[i]).detach().reshape(-1).to(rows)
        return distributed.all_reduce_sum_(rows, self.group, "sharing per-view results")

    def view_quality(self, views: Sequence[int]) -> dict:
        """L-infinity (x255, the largest) and PSNR (the lowest) of the current protected renders of
        ``views`` against the raw ones."""
        from adlift.image_metrics import linf_per_image, psnr_per_image

        def quality(v: int) -> torch.Tensor:
            x, raw = self.render_protected([v]), self.raw_renders[v : v + 1]
            return torch.stack([linf_per_image(x, raw)[0] * 255.0, psnr_per_image(x, raw)[0]])

        rows = self.per_view(views, 2, quality)
        return {"linf_255": float(rows[:, 0].max()), "psnr": float(rows[:, 1].min())}

    # ------------------------------------------------------------------ checkpoints
    def fingerprint(self) -> dict:
        return {
            "version": CHECKPOINT_VERSION,
            "config": self.config.fingerprint(),
            "instruction": self.loss.instruction,
            "scene": scene_checksum(self.raw),
            "views": list(self.cameras.names),
            "size": [self.cameras.width, self.cameras.height],
        }

    def checkpoint_state(self) -> dict:
        """Everything a resumed run needs, as plain tensors, numbers and strings (CPU)."""
        return {
            "fingerprint": self.fingerprint(),
            "units_done": self.units_done,
            "params": self.params.state_dict(),
            "generator": self.generator.get_state(),
            "targets": {k: v.detach().cpu() for k, v in self.targets.items()},
            "quantiser": self.quantiser.state_dict() if self.quantiser is not None else None,
            "history": self.history,
            "seconds": self.seconds,
        }

    def save_checkpoint(self, path: Path) -> None:
        """Save :meth:`checkpoint_state` atomically (rank 0 only: every rank holds the same state)."""
        from adlift.io.checkpoint import save_checkpoint

        if self.group.is_main:
            save_checkpoint(path, self.checkpoint_state())

    def load_checkpoint(self, path: Path) -> bool:
        """Resume from a file of :meth:`save_checkpoint` if there is one; whether there was.

        Rank 0 reads the file and the other ranks get its bytes (no shared filesystem needed);
        ``weights_only``: a file carrying pickled objects is refused before anything in it runs."""
        from adlift.io.checkpoint import load_checkpoint

        data = path.read_bytes() if self.group.is_main and path.exists() else None
        if self.group.distributed:
            data = distributed.broadcast_bytes(data, self.group) or None
        if data is None:
            return False
        with distributed.agreed(self.group, "reading the checkpoint"):  # a bad file: one line, from rank 0
            self.restore(load_checkpoint(path, "protection checkpoint", data=data), path)
        return True

    def restore(self, state: dict, source: object = "the checkpoint") -> None:
        """Continue from :meth:`checkpoint_state` of the same run (AdLiftError for another run's)."""
        if not isinstance(state, dict) or state.get("fingerprint") != self.fingerprint():
            raise AdLiftError(
                f"{source} is a checkpoint of a different run (scene, views, instruction or settings differ); "
                "delete it or choose another output directory"
            )
        self.params.load_state_dict(state["params"])
        if self.quantiser is not None:
            self.quantiser.load_state_dict(state.get("quantiser"), self.device)
        self.generator.set_state(state["generator"])
        self.targets = {int(k): v.to(self.device) for k, v in state["targets"].items()}
        self.history = list(state["history"])
        self.units_done = int(state["units_done"])
        self.seconds = float(state["seconds"])


def run_next_unit(state: ProtectionState, units: list, method: ProtectionMethod) -> dict:
    """Run unit ``units[state.units_done]``, time it, record it in the history; returns its record."""
    unit = units[state.units_done]
    tic = time.perf_counter()
    record = method.run_unit(state, unit)
    state.seconds += time.perf_counter() - tic
    record["seconds"] = round(time.perf_counter() - tic, 4)
    state.history.append(record)
    state.units_done += 1
    return record


def run_units(
    state: ProtectionState,
    method: ProtectionMethod,
    *,
    on_unit: Callable[[int, int], None] | None = None,
) -> None:
    """Run ``method.plan(state)``'s units from ``state.units_done`` on, with progress and checkpoints.

    ``on_unit(done, total)`` is called after each unit (after its checkpoint): tests use it to
    interrupt a run; a GUI could use it for progress.
    """
    cfg = state.config  # view_batch resolved
    ckpt = Path(cfg.checkpoint) if cfg.checkpoint is not None else None
    if ckpt is not None:
        state.load_checkpoint(ckpt)
    units = method.plan(state)
    total = len(units)
    bar = tqdm(total=total, initial=state.units_done, desc=cfg.method, unit="view" if cfg.view_batch == 1 else "batch",
               disable=not (cfg.progress and state.group.is_main), dynamic_ncols=True)  # fmt: skip
    try:
        while state.units_done < total:
            record = run_next_unit(state, units, method)
            bar.update(1)
            bar.set_postfix({k: (f"{record[k]:.4g}" if isinstance(record[k], float) else record[k])
                             for k in PROGRESS_FIELDS if k in record})  # fmt: skip
            last_of_round = state.units_done == total or record.get("end_of_round", False)
            if ckpt is not None and (state.units_done % cfg.checkpoint_every == 0 or last_of_round):
                state.save_checkpoint(ckpt)
            if on_unit is not None:
                on_unit(state.units_done, total)
    finally:
        bar.close()

"""DGE scene edits on demand (the viewer's "Edit scenes (DGE)"): the raw and protected scenes edited DGE-style.

A :class:`SceneEditRequest` is an :class:`~adlift.viewer.edits.EditJob` for the viewer's
:class:`~adlift.viewer.edits.EditWorker` (one job at a time; the editor is shared with the 2D edits). It runs
:func:`adlift.editors.dge.edit_scenes_dge`, the paired edit ``adlift evaluate --mode dge`` runs: every
scene from the same training cameras with the same settings and seed. Its result, scene name ->
edited :class:`~adlift.scene.GaussianScene`, is cached under :meth:`SceneEditRequest.cache_key`; the
app adds the scenes as variants (:data:`VARIANT_LABELS`) and renders them in the comparison panel.
"""

from __future__ import annotations

import dataclasses

from adlift.cameras import Cameras
from adlift.editors.dge import DGEConfig
from adlift.errors import AdLiftError
from adlift.scene import GaussianScene
from adlift.viewer.edits import EditSettings, Progress

#: The scene-switch label of each DGE-edited scene.
VARIANT_LABELS = {"raw": "raw, DGE-edited", "protected": "protected, DGE-edited"}

#: Share of one scene's progress bar given to the multi-view edit (the fit gets the rest).
EDIT_SHARE = 0.5


def training_cameras(rigs: dict[str, Cameras], width: int) -> Cameras:
    """The views a DGE edit edits and fits to: the training split (else the orbit made up around the
    scene), resized to ``width`` pixels (the aspect kept)."""
    rig = rigs.get("train", rigs.get("orbit"))
    if rig is None or len(rig) == 0:
        raise AdLiftError("no training cameras to edit the scenes from; give --cameras with a train split")
    return rig.resized(width=width)


def scene_fraction(stage: str, done: int, total: int, fit_steps: int) -> float:
    """How far one scene's DGE edit is, in [0, 1]: the multi-view edit fills :data:`EDIT_SHARE` of it
    (all of it without fitting steps), the fit the rest."""
    part = min(1.0, done / max(total, 1))
    share = EDIT_SHARE if fit_steps > 0 else 1.0
    return share * part if stage == "edit" else share + (1.0 - share) * part


@dataclasses.dataclass(frozen=True, eq=False)
class SceneEditRequest:
    """DGE-edit ``scenes`` (raw, and protected if any) from ``cameras`` with ``settings`` and ``dge``."""

    scenes: dict[str, GaussianScene]
    """Name ("raw", "protected") -> the scene to edit (not modified)."""
    cameras: Cameras
    """The training views (:func:`training_cameras`)."""
    settings: EditSettings
    """Editor, instruction, diffusion steps, guidance and seed (the Edit folder's fields)."""
    dge: DGEConfig
    """DGE's own settings (``adlift view --dge.*``)."""
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Background of the renders the edit starts from and fits to."""
    backend: str = "auto"
    """Rasteriser of those renders."""
    kind = "dge"
    view_key = None

    def cache_key(self) -> tuple:
        """Settings, DGE settings, the views' size and count, and which scenes (the scenes and cameras of
        one viewer session are fixed)."""
        cams = self.cameras
        return ("dge", dataclasses.astuple(self.settings), dataclasses.astuple(self.dge), tuple(self.scenes),
                (len(cams), cams.width, cams.height), tuple(self.background), self.backend)  # fmt: skip

    def run(self, editor, progress: Progress) -> dict[str, GaussianScene]:
        """:func:`~adlift.editors.dge.edit_scenes_dge` with these settings; progress per UNet pass and fitting step."""
        from adlift.editors.dge import edit_scenes_dge
        from adlift.editors.scene_edit import SceneEditConfig

        s = self.settings
        edit = SceneEditConfig(steps=s.steps, guidance_scale=s.guidance_scale,
                               image_guidance_scale=s.image_guidance_scale, background=tuple(self.background),
                               backend=self.backend, seed=s.seed, progress=False)  # fmt: skip
        names = list(self.scenes)
        progress(0.0, f"DGE: rendering {len(self.cameras)} training views of {' and '.join(names)}")

        def report(name: str, stage: str, done: int, total: int) -> None:
            fraction = (names.index(name) + scene_fraction(stage, done, total, self.dge.fit_steps)) / len(names)
            what = "multi-view edit, UNet pass" if stage == "edit" else "fitting step"
            progress(fraction, f"DGE {name}: {what} {done}/{total}")

        results = edit_scenes_dge(self.scenes, self.cameras, editor, s.instruction, self.dge, edit, on_progress=report)
        return {name: result.scene for name, result in results.items()}

    def summary(self, seconds: float) -> str:
        labels = ", ".join(f"'{VARIANT_LABELS[n]}'" for n in self.scenes)
        return f"DGE-edited the scenes in {seconds:.1f} s; pick {labels} under Scene"

"""Protection: safeguard Gaussians optimised with Lifted PGD (or a baseline) against an editor.

    from adlift.attacks import AdversarialLoss, EncoderLossConfig
    from adlift.protect import ProtectConfig, protect
    config = ProtectConfig(eta=8/255, loss=EncoderLossConfig(target="gray"))
    loss = AdversarialLoss(editor.surface, "turn him into a clown", config.loss, config.eot)
    result = protect(scene, train_cameras, loss, config, novel_cameras=novel)
    result.protected   # one GaussianScene in the published order (what protected.ply holds)
    result.summary     # losses, PSNR, L-infinity on training and novel views

Modules: :mod:`~adlift.protect.safeguard` (init, trainable groups), :mod:`~adlift.protect.engine`
(shared state, fitting, checkpoints), :mod:`~adlift.protect.lifted` (Lifted PGD),
:mod:`~adlift.protect.baselines` (fit2d, direct), registered in :data:`~adlift.protect.methods.METHODS`,
:mod:`~adlift.protect.api` (``protect``),
:mod:`~adlift.protect.publish` (the published order),
:mod:`~adlift.protect.output` (the .ply + manifest.json a run writes), :mod:`~adlift.protect.manifest`
(the typed manifest.json), :mod:`~adlift.protect.report` (the end-of-run summary table).
"""

from adlift.protect.api import ProtectionRun, ProtectResult, protect, summarise, view_metrics
from adlift.protect.config import ProtectConfig
from adlift.protect.manifest import Manifest
from adlift.protect.methods import METHODS, ProtectionMethod
from adlift.protect.publish import publish_order, published_scene
from adlift.protect.report import format_summary, print_summary, summary_table
from adlift.protect.safeguard import GROUPS, SafeguardConfig, SafeguardInit, init_safeguard, split_opacity_logits

__all__ = [
    "GROUPS",
    "METHODS",
    "Manifest",
    "ProtectConfig",
    "ProtectResult",
    "ProtectionMethod",
    "ProtectionRun",
    "format_summary",
    "print_summary",
    "summary_table",
    "SafeguardConfig",
    "SafeguardInit",
    "init_safeguard",
    "protect",
    "publish_order",
    "published_scene",
    "split_opacity_logits",
    "summarise",
    "view_metrics",
]

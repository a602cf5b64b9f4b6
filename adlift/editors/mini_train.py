"""Train the mini InstructPix2Pix (:mod:`adlift.editors.mini`) on CPU: ``make train-mini``.

    python -m adlift.editors.mini_train --out outputs/train-mini            # train (resumes if OUT has a checkpoint)
    python -m adlift.editors.mini_train --out outputs/train-mini --export   # + write the weights into the package

Data: 128x128 renders of the bundled scenes (``scenes/bust``, ``scenes/crate``) from many orbit
viewpoints, and random crops of the colour photos that ship in scikit-image's data folder, resized
to the training resolution, flipped at random. Held out (never trained on): the renders from
viewpoints on separate orbits (:data:`HELDOUT_VIEWS`) and the photos of :data:`HELDOUT_PHOTOS`.
Targets: :func:`adlift.editors.mini.reference_edit` of the source, one random instruction per image.

Two phases, one checkpoint (``OUT/checkpoint.pt``: tensors, numbers and strings only, loaded with
``torch.load(weights_only=True)``; written every ``--save-every`` steps and at the end of a phase):

1. the VAE (4x downsampling, 4 latent channels): L1 + MSE reconstruction + a small KL;
2. the UNet and the text encoder (VAE frozen) with InstructPix2Pix's objective: epsilon prediction
   on the scaled latent of the edited image, conditioned on the *unscaled* posterior mode of the
   source (concatenated channels) and on the instruction; conditioning dropout as in the paper
   (text dropped 5 %, image dropped 5 %, both 5 %) so classifier-free guidance works.

All randomness comes from one seeded ``torch.Generator`` stored in the checkpoint, so a resumed
run continues the same stream.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from adlift.editors.mini import INSTRUCTIONS, MINI_WEIGHTS, MODEL_ORGANISM_NOTE, edit_success, reference_edit
from adlift.editors.tiny import TINY_MAX_LENGTH, assemble_ip2p_pipeline, load_tiny_tokenizer, tiny_text_config
from adlift.editors.weights import import_diffusers, quiet_hf
from adlift.io.checkpoint import load_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parents[2]
SCENES = ("bust", "crate")
#: scikit-image photos used for training / held out (colour images of its data folder).
TRAIN_PHOTOS = ("astronaut.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "retina.jpg",
                "hubble_deep_field.jpg", "ihc.png", "color.png", "logo.png")  # fmt: skip
HELDOUT_PHOTOS = ("coffee.png", "motorcycle_right.png")
TRAIN_VIEWS = 64  # per scene, on two orbits
HELDOUT_VIEWS = 4  # per scene, on orbits the training views never use


@dataclass
class TrainConfig:
    """Everything that changes the trained weights (recorded in the checkpoint and the card)."""

    seed: int = 0
    vae_steps: int = 800
    vae_batch: int = 16
    vae_res: int = 64
    vae_lr: float = 1e-3
    kl_weight: float = 1e-6
    unet_steps: int = 1800
    unet_batch: int = 32
    unet_res: int = 64
    unet_res_final: int = 128  # the last unet_final_steps at this resolution
    unet_final_steps: int = 0
    unet_lr: float = 5e-4
    drop_prob: float = 0.05  # text only, image only, both: each this probability
    dec_steps: int = 400  # phase 3: the VAE decoder alone (encoder and latents frozen), at dec_res
    dec_batch: int = 4
    dec_res: int = 128
    dec_lr: float = 3e-4
    unet2_steps: int = 0  # phase 4 (off): UNet again at 128, batch 8, lr 2e-4: 600 steps LOWERED held-out 18.98 -> 17.07 dB
    unet2_batch: int = 8
    unet2_res: int = 128
    unet2_lr: float = 2e-4
    vae_channels: tuple[int, ...] = (32, 64, 64)
    unet_channels: tuple[int, ...] = (64, 128)

    def total(self) -> int:
        return self.vae_steps + self.unet_steps + self.dec_steps + self.unet2_steps


# ---------------------------------------------------------------------------------------------- models
def build_mini_pipeline(config: TrainConfig):
    """The untrained mini pipeline (weights from ``config.seed``; global RNG untouched)."""
    import_diffusers()
    with quiet_hf():
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel

        tokenizer = load_tiny_tokenizer()
        n_up = len(config.unet_channels)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            vae = AutoencoderKL(
                in_channels=3,
                out_channels=3,
                down_block_types=("DownEncoderBlock2D",) * len(config.vae_channels),
                up_block_types=("UpDecoderBlock2D",) * len(config.vae_channels),
                block_out_channels=tuple(config.vae_channels),
                layers_per_block=1,
                latent_channels=4,
                norm_num_groups=16,
                sample_size=128,
            )
            torch.manual_seed(config.seed + 1)
            unet = UNet2DConditionModel(
                sample_size=32,
                in_channels=8,  # 4 noisy latent channels + 4 image-conditioning channels
                out_channels=4,
                layers_per_block=1,
                block_out_channels=tuple(config.unet_channels),
                down_block_types=("CrossAttnDownBlock2D",) * (n_up - 1) + ("DownBlock2D",),
                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n_up - 1),
                cross_attention_dim=32,
                attention_head_dim=8,
                norm_num_groups=16,
            )
            torch.manual_seed(config.seed + 2)
            text_encoder = CLIPTextModel(tiny_text_config(tokenizer))
        return assemble_ip2p_pipeline(vae=vae, unet=unet, text_encoder=text_encoder, tokenizer=tokenizer)


# ---------------------------------------------------------------------------------------------- data
def _photo(name: str) -> torch.Tensor:
    """A scikit-image data photo as uint8 [3, H, W] (grey -> 3 channels, alpha dropped)."""
    import skimage
    from PIL import Image

    path = Path(skimage.__file__).resolve().parent / "data" / name
    img = np.asarray(Image.open(path).convert("RGB"))
    return torch.from_numpy(img.copy()).permute(2, 0, 1).contiguous()


def _renders(scene_name: str, heldout: bool, res: int = 128) -> torch.Tensor:
    """Renders [N, 3, res, res] uint8 of a bundled scene from training or held-out orbits."""
    from adlift.io import load_cameras, read_scene
    from adlift.render import render_images

    scene = read_scene(REPO / "scenes" / scene_name / "scene.ply")
    if heldout:  # elevations and azimuth offsets no training view uses
        specs = [f"orbit:{HELDOUT_VIEWS},elev=22:22,azim=17,size={res}x{res}"]
    else:
        half = TRAIN_VIEWS // 2
        specs = [f"orbit:{half},elev=-15:40,size={res}x{res}", f"orbit:{half},elev=0:55,azim=5.6,size={res}x{res}"]
    out = []
    for spec in specs:
        cams = load_cameras(spec, scene=scene)
        out.append(render_images(scene, cams, backend="torch"))
    return (torch.cat(out).clamp(0, 1) * 255).round().to(torch.uint8)


class Sources:
    """The images one split samples from: renders and photos, uint8 (``scenes=()``: photos only)."""

    def __init__(self, heldout: bool, scenes: tuple[str, ...] = SCENES):
        self.renders = torch.cat([_renders(s, heldout) for s in scenes]) if scenes else None
        self.photos = [_photo(p) for p in (HELDOUT_PHOTOS if heldout else TRAIN_PHOTOS)]

    def sample(self, n: int, res: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` random training images [n, 3, res, res] in [0, 1]: half renders, half photo crops."""
        out = []
        for _ in range(n):
            u = torch.rand(4, generator=gen).tolist()
            if u[0] < 0.4 and self.renders is not None:
                img = self.renders[int(u[1] * len(self.renders))]
                s = int(128 * (0.6 + 0.4 * u[2]))
            else:
                img = self.photos[int(u[1] * len(self.photos))]
                m = min(img.shape[-2:])
                s = int(min(m, max(res, m * (0.1 + 0.5 * u[2]))))
            h, w = img.shape[-2:]
            y = int(torch.randint(0, h - s + 1, (1,), generator=gen))
            x = int(torch.randint(0, w - s + 1, (1,), generator=gen))
            crop = img[:, y : y + s, x : x + s].float()[None] / 255.0
            crop = F.interpolate(crop, size=(res, res), mode="bilinear", antialias=True, align_corners=False)
            if u[3] < 0.5:
                crop = crop.flip(-1)
            out.append(crop)
        return torch.cat(out).clamp(0, 1)


def heldout_batch(res: int = 128, per_photo: int = 4) -> torch.Tensor:
    """The fixed held-out images [N, 3, res, res] in [0, 1]: every held-out render + fixed photo crops."""
    src = Sources(heldout=True)
    imgs = [src.renders.float() / 255.0]
    if res != 128:
        imgs[0] = F.interpolate(imgs[0], size=(res, res), mode="bilinear", antialias=True)
    for photo in src.photos:
        h, w = photo.shape[-2:]
        m = min(h, w)
        for k in range(per_photo):
            s = int(m * (0.35 + 0.15 * k))
            y, x = (h - s) * (k % 2) // 2, (w - s) * ((k + 1) % 3) // 2
            crop = photo[:, y : y + s, x : x + s].float()[None] / 255.0
            imgs.append(F.interpolate(crop, size=(res, res), mode="bilinear", antialias=True))
    return torch.cat(imgs).clamp(0, 1)


# ---------------------------------------------------------------------------------------------- training
def _text_ids(tokenizer, prompts: list[str]) -> torch.Tensor:
    return tokenizer(prompts, padding="max_length", max_length=TINY_MAX_LENGTH, truncation=True,
                     return_tensors="pt").input_ids  # fmt: skip


def vae_loss(vae, x: torch.Tensor, kl_weight: float, gen: torch.Generator) -> torch.Tensor:
    """Reconstruction (L1 + MSE, [-1, 1] space) + kl_weight * KL of a posterior sample's reconstruction."""
    x = 2 * x - 1
    dist = vae.encode(x).latent_dist
    z = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=gen)
    rec = vae.decode(z).sample
    return F.l1_loss(rec, x) + F.mse_loss(rec, x) + kl_weight * dist.kl().mean()


def unet_loss(pipe, scaling: float, src: torch.Tensor, instructions: list[str], drop_prob: float,
              gen: torch.Generator) -> torch.Tensor:  # fmt: skip
    """InstructPix2Pix's training loss on a batch of sources and one instruction each."""
    tgt = torch.stack([reference_edit(s[None], i)[0] for s, i in zip(src, instructions, strict=True)])
    b = src.shape[0]
    with torch.no_grad():
        both = pipe.vae.encode(torch.cat([src, tgt]) * 2 - 1).latent_dist.mean
        cond, z0 = both[:b], both[b:] * scaling
    u = torch.rand(b, generator=gen)
    drop_text = (u < drop_prob) | ((u >= 2 * drop_prob) & (u < 3 * drop_prob))
    drop_img = (u >= drop_prob) & (u < 3 * drop_prob)
    prompts = ["" if d else i for d, i in zip(drop_text.tolist(), instructions, strict=True)]
    cond = cond * (~drop_img).float().view(b, 1, 1, 1)
    text = pipe.text_encoder(_text_ids(pipe.tokenizer, prompts))[0]
    t = torch.randint(0, 1000, (b,), generator=gen)
    noise = torch.randn(z0.shape, generator=gen)
    abar = pipe.scheduler.alphas_cumprod[t].view(b, 1, 1, 1)
    zt = abar.sqrt() * z0 + (1 - abar).sqrt() * noise
    eps = pipe.unet(torch.cat([zt, cond], dim=1), t, encoder_hidden_states=text).sample
    return F.mse_loss(eps, noise)


def _cosine(step: int, total: int, lr: float, warmup: int = 50) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup)))))


@dataclass
class Trainer:
    """The training state; :meth:`run` trains to the end, checkpointing into ``out``."""

    config: TrainConfig
    out: Path | None = None
    progress: bool = True
    save_every: int = 100
    log: list = field(default_factory=list)
    sources: Sources | None = None  # default: the training split (renders + photos)

    def __post_init__(self):
        self.pipe = build_mini_pipeline(self.config)
        self.gen = torch.Generator().manual_seed(self.config.seed)
        self.step = 0
        self.scaling = 1.0
        self.seconds = 0.0
        self.sources = self.sources if self.sources is not None else Sources(heldout=False)
        self.vae_opt = torch.optim.AdamW(self.pipe.vae.parameters(), lr=self.config.vae_lr, weight_decay=0.0)
        params = list(self.pipe.unet.parameters()) + list(self.pipe.text_encoder.parameters())
        self.unet_opt = torch.optim.AdamW(params, lr=self.config.unet_lr, weight_decay=0.0)
        self.dec_opt = torch.optim.AdamW(self.pipe.vae.decoder.parameters(), lr=self.config.dec_lr, weight_decay=0.0)

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict:
        return {
            "config": json.dumps(asdict(self.config)),
            "step": self.step,
            "scaling": self.scaling,
            "seconds": self.seconds,
            "gen": self.gen.get_state(),
            "vae": self.pipe.vae.state_dict(),
            "unet": self.pipe.unet.state_dict(),
            "text_encoder": self.pipe.text_encoder.state_dict(),
            "vae_opt": self.vae_opt.state_dict(),
            "unet_opt": self.unet_opt.state_dict(),
            "dec_opt": self.dec_opt.state_dict(),
            "log": json.dumps(self.log),
        }

    def load_state_dict(self, state: dict) -> None:
        # A run may be extended by phases it has not started (decoder: dec_*, second UNet phase: unet2_*).
        saved, ours = json.loads(state["config"]), json.loads(json.dumps(asdict(self.config)))
        step = int(state["step"])
        c = self.config
        free = (("dec_",) if step <= c.vae_steps + c.unet_steps else ()) + (
            ("unet2_",) if step <= c.vae_steps + c.unet_steps + c.dec_steps else ())
        def fixed(cfg: dict) -> dict:
            return {k: v for k, v in cfg.items() if not k.startswith(free or ("\0",))}
        if fixed({**ours, **saved}) != fixed(ours) or set(saved) - set(ours):
            from adlift.errors import AdLiftError

            raise AdLiftError("the checkpoint belongs to a run with other settings; use another --out")
        self.step, self.scaling, self.seconds = int(state["step"]), float(state["scaling"]), float(state["seconds"])
        self.gen.set_state(state["gen"])
        self.pipe.vae.load_state_dict(state["vae"])
        self.pipe.unet.load_state_dict(state["unet"])
        self.pipe.text_encoder.load_state_dict(state["text_encoder"])
        self.vae_opt.load_state_dict(state["vae_opt"])
        self.unet_opt.load_state_dict(state["unet_opt"])
        if "dec_opt" in state:
            self.dec_opt.load_state_dict(state["dec_opt"])
        self.log = json.loads(state["log"])

    def phase(self, step: int) -> str:
        """The phase step ``step`` (1-based: the step just taken) belongs to."""
        c = self.config
        ends = np.cumsum([c.vae_steps, c.unet_steps, c.dec_steps, c.unet2_steps])
        return ("vae", "unet", "decoder", "unet2")[min(3, int(np.searchsorted(ends, step)))]

    def save(self) -> None:
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            save_checkpoint(self.out / "checkpoint.pt", self.state_dict())

    def resume(self) -> bool:
        path = None if self.out is None else self.out / "checkpoint.pt"
        if path is None or not path.is_file():
            return False
        self.load_state_dict(load_checkpoint(path))
        return True

    # ------------------------------------------------------------------ steps
    def train_step(self) -> float:
        """One optimisation step of the current phase; returns its loss."""
        c = self.config
        if self.step < c.vae_steps:
            vae = self.pipe.vae.train()
            for g in self.vae_opt.param_groups:
                g["lr"] = _cosine(self.step, c.vae_steps, c.vae_lr)
            x = self.sources.sample(c.vae_batch, c.vae_res, self.gen)
            loss = vae_loss(vae, x, c.kl_weight, self.gen)
            self.vae_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.vae_opt.step()
        elif c.vae_steps + c.unet_steps <= self.step < c.vae_steps + c.unet_steps + c.dec_steps:
            loss = self.decoder_step()
        else:
            if self.step == c.vae_steps or self.scaling == 1.0:
                self.scaling = self.latent_scaling()
            k = self.step - c.vae_steps
            self.pipe.vae.eval().requires_grad_(False)
            self.pipe.unet.train()
            self.pipe.text_encoder.train()
            if k < c.unet_steps:
                lr = _cosine(k, c.unet_steps, c.unet_lr)
                res = c.unet_res_final if k >= c.unet_steps - c.unet_final_steps else c.unet_res
                batch = c.unet_batch if res == c.unet_res else max(4, c.unet_batch * c.unet_res**2 // res**2)
            else:  # phase 4, after the decoder phase
                lr = _cosine(k - c.unet_steps - c.dec_steps, c.unet2_steps, c.unet2_lr, warmup=20)
                res, batch = c.unet2_res, c.unet2_batch
            for g in self.unet_opt.param_groups:
                g["lr"] = lr
            x = self.sources.sample(batch, res, self.gen)
            picks = torch.randint(0, len(INSTRUCTIONS), (batch,), generator=self.gen).tolist()
            loss = unet_loss(self.pipe, self.scaling, x, [INSTRUCTIONS[i] for i in picks], c.drop_prob, self.gen)
            self.unet_opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.pipe.unet.parameters(), 1.0)
            self.unet_opt.step()
        self.step += 1
        return float(loss.detach())

    def decoder_step(self) -> torch.Tensor:
        """Phase 3: sharpen the decoder on the frozen encoder's posterior means (latent space unchanged)."""
        c = self.config
        k = self.step - c.vae_steps - c.unet_steps
        vae = self.pipe.vae
        vae.requires_grad_(False)
        vae.decoder.requires_grad_(True)
        vae.post_quant_conv.requires_grad_(False)
        vae.eval()
        vae.decoder.train()
        for g in self.dec_opt.param_groups:
            g["lr"] = _cosine(k, c.dec_steps, c.dec_lr, warmup=20)
        x = self.sources.sample(c.dec_batch, c.dec_res, self.gen) * 2 - 1
        with torch.no_grad():
            z = vae.post_quant_conv(vae.encode(x).latent_dist.mean)
        rec = vae.decoder(z)
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x)
        self.dec_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.dec_opt.step()
        return loss

    @torch.no_grad()
    def latent_scaling(self) -> float:
        """1 / std of the VAE's latents on a fixed batch (SD's ``scaling_factor`` convention)."""
        g = torch.Generator().manual_seed(self.config.seed + 7)
        x = self.sources.sample(32, self.config.unet_res, g)
        z = self.pipe.vae.eval().encode(2 * x - 1).latent_dist.mean
        return float(1.0 / z.std())

    def run(self, until: int | None = None) -> None:
        from tqdm.auto import tqdm

        until = self.config.total() if until is None else min(until, self.config.total())
        bar = tqdm(total=until, initial=self.step, desc="train mini", unit="step", disable=not self.progress,
                   mininterval=5.0)  # fmt: skip
        avg = None
        while self.step < until:
            t0 = time.perf_counter()
            loss = self.train_step()
            self.seconds += time.perf_counter() - t0
            avg = loss if avg is None else 0.95 * avg + 0.05 * loss
            phase = self.phase(self.step)
            bar.set_postfix(phase=phase, loss=f"{avg:.4f}", refresh=False)
            bar.update(1)
            if self.step % 25 == 0:
                self.log.append({"step": self.step, "phase": phase, "loss": avg, "seconds": round(self.seconds, 1)})
            if self.step % self.save_every == 0 or self.phase(self.step) != self.phase(self.step + 1):
                self.save()
        bar.close()
        self.save()


# ---------------------------------------------------------------------------------------------- evaluation/export
@torch.no_grad()
def vae_psnr(vae, images: torch.Tensor) -> float:
    from adlift.image_metrics import psnr_per_image

    rec = (vae.eval().decode(vae.encode(images * 2 - 1).latent_dist.mean).sample / 2 + 0.5).clamp(0, 1)
    return float(psnr_per_image(rec, images).mean())


def evaluate_editor(editor, images: torch.Tensor, *, steps: int, guidance_scale: float,
                    image_guidance_scale: float, instructions=None, seed: int = 0) -> dict:  # fmt: skip
    """Held-out edit success per instruction: mean PSNR / SSIM of editor.edit(x) to reference_edit(x)."""
    rows = {}
    for instr in instructions or INSTRUCTIONS:
        edited = editor.edit(images, instr, steps=steps, guidance_scale=guidance_scale,
                             image_guidance_scale=image_guidance_scale, seed=seed, batch_size=len(images))  # fmt: skip
        m = edit_success(edited, images, instr)
        rows[instr] = {"psnr": float(m["psnr"].mean()), "ssim": float(m["ssim"].mean())}
    rows["mean"] = {k: float(np.mean([r[k] for r in rows.values()])) for k in ("psnr", "ssim")}
    return rows


def export(trainer: Trainer, target: Path, extra: dict | None = None) -> Path:
    """Write the trained pipeline (safetensors, ``save_pretrained``) + ``adlift_mini.json`` into ``target``."""
    import copy

    pipe = trainer.pipe
    pipe.vae.register_to_config(scaling_factor=trainer.scaling)
    tmp = Path(tempfile.mkdtemp(prefix=".mini.", dir=target.parent))
    try:
        with quiet_hf():  # stored as float16 (half the size); loaded back as float32 by default
            half = copy.copy(pipe)
            for name in ("vae", "unet", "text_encoder"):
                setattr(half, name, copy.deepcopy(getattr(pipe, name)).to(torch.float16))
            half.save_pretrained(tmp, safe_serialization=True)
        info = {
            "editor": "mini",
            "model_organism": True,
            "note": MODEL_ORGANISM_NOTE,
            "config": asdict(trainer.config),
            "train_seconds": round(trainer.seconds, 1),
            "parameters": {k: count_parameters(getattr(pipe, k)) for k in ("vae", "unet", "text_encoder")},
            "scaling_factor": trainer.scaling,
            **(extra or {}),
        }
        (tmp / "adlift_mini.json").write_text(json.dumps(info, indent=1) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m adlift.editors.mini_train", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("outputs/train-mini"), help="checkpoint/log folder (resumed)")
    p.add_argument("--until", type=int, default=None, help="stop after this many total steps (resume later)")
    p.add_argument("--export", action="store_true", help="evaluate on the held-out set and write the package weights")
    p.add_argument("--export-to", type=Path, default=MINI_WEIGHTS)
    p.add_argument("--threads", type=int, default=None)
    for f, v in asdict(TrainConfig()).items():
        if not isinstance(v, tuple):
            p.add_argument(f"--{f.replace('_', '-')}", type=type(v), default=v)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = TrainConfig(**{f: getattr(args, f) for f in asdict(TrainConfig()) if hasattr(args, f)})
    trainer = Trainer(cfg, out=args.out)
    if trainer.resume():
        print(f"resumed at step {trainer.step}/{cfg.total()} ({trainer.seconds:.0f} s so far)")
    trainer.run(args.until)
    held = heldout_batch(128)
    print(f"VAE held-out reconstruction PSNR at 128: {vae_psnr(trainer.pipe.vae, held):.2f} dB")
    if args.export and trainer.step >= cfg.vae_steps:
        extra = export_and_evaluate(trainer, args.export_to, held)
        (args.out / "heldout.json").write_text(json.dumps(extra, indent=1) + "\n")


#: Guidance settings compared on validation images from the *training* sources (never the held-out set).
GUIDANCE_GRID = ((1.0, 1.0), (1.5, 1.0), (3.0, 1.5))
#: Denoising steps of every measurement (Euler ancestral, the pipeline's scheduler).
EVAL_STEPS = 10
#: What tests/test_mini_editor.py re-measures with the shipped weights (held-out images, few steps).
TEST_CHECK = {"images": [0, 4, 8, 12], "instructions": ["turn it blue", "make it gold"], "steps": 10}


def export_and_evaluate(trainer: Trainer, target: Path, held: torch.Tensor) -> dict:
    """Export, pick the guidance on validation images, measure held-out edit success, export with the card data."""
    from adlift.editors.ip2p import IP2PEditor

    export(trainer, target)
    editor = IP2PEditor.from_pretrained(target, device="cpu", dtype=torch.float32, name="mini")
    val = trainer.sources.sample(4, 128, torch.Generator().manual_seed(trainer.config.seed + 11))
    grid = {}
    for g, ig in GUIDANCE_GRID:
        rows = evaluate_editor(editor, val, steps=EVAL_STEPS, guidance_scale=g, image_guidance_scale=ig)
        grid[f"{g}/{ig}"] = rows["mean"]
        print(f"validation guidance {g}/{ig}: PSNR {rows['mean']['psnr']:.2f} dB SSIM {rows['mean']['ssim']:.3f}")
    best = max(GUIDANCE_GRID, key=lambda k: grid[f"{k[0]}/{k[1]}"]["psnr"])
    settings = {"steps": EVAL_STEPS, "guidance_scale": best[0], "image_guidance_scale": best[1]}
    rows = evaluate_editor(editor, held, **settings)
    for k, r in rows.items():
        print(f"{k:34s} PSNR {r['psnr']:6.2f} dB  SSIM {r['ssim']:.3f}")
    half = held[::2]  # every other held-out image: the real IP2P's default guidance, for comparison
    ip2p_defaults = evaluate_editor(editor, half, steps=EVAL_STEPS, guidance_scale=7.5, image_guidance_scale=1.5)
    check = {**TEST_CHECK, "guidance_scale": best[0], "image_guidance_scale": best[1], "psnr": {}}
    imgs = held[check["images"]]
    for instr in check["instructions"]:
        ed = editor.edit(imgs, instr, steps=check["steps"], guidance_scale=best[0], image_guidance_scale=best[1],
                         seed=0, batch_size=len(imgs))  # fmt: skip
        check["psnr"][instr] = float(edit_success(ed, imgs, instr)["psnr"].mean())
    extra = {"heldout": rows, "heldout_images": len(held), "eval_settings": settings,
             "heldout_half_at_guidance_7.5_1.5": ip2p_defaults, "validation_guidance_grid": grid,
             "vae_heldout_psnr": vae_psnr(trainer.pipe.vae, held), "test_check": check}  # fmt: skip
    export(trainer, target, extra)
    return extra

if __name__ == "__main__":
    main()

"""Train the eye-part segmenter (``masked_gatys.eyes.segment``) on renders with exact labels.

    python scripts/train_segmenter.py -o runs/seg --steps 20000          # start
    python scripts/train_segmenter.py -o runs/seg --steps 30000 --resume # go on from the last checkpoint

Data: eyes rendered by ``masked_gatys.eyes.render_eye`` (both domains; the present framing at
two aspect ratios) and, where the renderer has them, its layouts and looks
(``masked_gatys.eyes.render.LAYOUTS``/``LOOKS`` through ``render_set``), cached once in
``OUT/pool-*.pt``. Each step draws a batch from the pools and augments it (all on the label
maps' geometry, so the labels stay exact): a random crop, zoom (the eye from a third of the
frame to filling it, as in near-eye frames), aspect, rotation and flip; per-class brightness
(dark or bright iris, bright sclera and skin as in near-infrared), gamma, contrast, light
ramps, blur, low resolution, noise, histogram equalisation, glints and lash strokes; and
closed eyes made by filling the opening with skin and a lash line (labels all skin).
Validation: held-out renders (other seeds) under a fixed augmentation; per-class IoU.

Writes ``OUT/last.pt`` (net, optimizer, step: what ``--resume`` reads) and ``OUT/best.pt``
(the segmenter checkpoint ``load_segmenter`` reads, best mean iris+pupil IoU) every
``--val-every`` steps, and ``OUT/log.jsonl`` (one line per validation). One CPU thread by
default (``--threads``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from masked_gatys.eyes.render import EyeError, render_eye
from masked_gatys.eyes.segment import DEFAULT_SIZE, SegNet, Segmenter, prepare_input, save_segmenter
from masked_gatys.files import atomic_write

LUMA = torch.tensor([0.299, 0.587, 0.114])


# ----------------------------------------------------------------------------------- pools


def _render_pool(n: int, seed: int, size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """``n`` renders of the present framing: grey uint8 images (N, H, W), labels uint8."""
    rng = np.random.default_rng(seed)
    imgs, labs = [], []
    k = 0
    while len(imgs) < n:
        k += 1
        domain = "real" if rng.uniform() < 0.6 else "synthetic"
        yaw, pitch = float(rng.uniform(-45, 45)), float(rng.uniform(-30, 30))
        try:
            r = render_eye(yaw=yaw, pitch=pitch, domain=domain, size=size, seed=int(seed * 1_000_003 + k))
        except EyeError:
            continue
        grey = (r.image[0] * LUMA.view(3, 1, 1)).sum(0)
        imgs.append((grey * 255).round().clamp(0, 255).to(torch.uint8))
        labs.append(r.labels.to(torch.uint8))
    return {"images": torch.stack(imgs), "labels": torch.stack(labs)}


#: the size each layout is rendered at for training (twice the working size or more, so that a
#: zoom stays sharp; the network sees every image at 36x60)
RENDER_SIZES = {"unity": (72, 120), "mpiigaze": (72, 120), "nir": (120, 160)}
#: the zoom range of each layout's renders in training: real near-infrared frames come closer
#: than the nir layout (DeepVOG's iris fills the frame's height, its pupil is 90-100 px of 240)
LAYOUT_ZOOM = {"nir": (0.95, 2.0)}


def _layout_pool(n: int, seed: int) -> dict[str, dict[str, torch.Tensor]]:
    """Renders of every layout in each of its looks (where the renderer has layouts): {name: pool}."""
    try:
        from masked_gatys.eyes.datasets import render_set
        from masked_gatys.eyes.layouts import LAYOUTS
    except ImportError:
        return {}
    pools = {}
    for name, layout in LAYOUTS.items():
        for look in ("clean",) + tuple(layout.real_looks):
            gs = render_set(n, layout=name, look=look, seed=seed, size=RENDER_SIZES.get(name, layout.size))
            grey = (gs.images * LUMA.view(1, 3, 1, 1)).sum(1) if gs.images.shape[1] == 3 else gs.images[:, 0]
            pools[f"{name}/{look}"] = {"images": (grey * 255).round().clamp(0, 255).to(torch.uint8),
                                       "labels": gs.parts.to(torch.uint8), "zoom": (0.92, 1.12)}
    # the unity layout draws no closed eyes by itself: shut and half-shut ones
    for closure in (1.0, 0.6):
        gs = render_set(max(1, n // 3), layout="unity", look="any", seed=seed + 1, size=RENDER_SIZES["unity"],
                        closure=closure)
        grey = (gs.images * LUMA.view(1, 3, 1, 1)).sum(1)
        pools[f"unity/any/closure-{closure}"] = {"images": (grey * 255).round().clamp(0, 255).to(torch.uint8),
                                                 "labels": gs.parts.to(torch.uint8), "zoom": (0.92, 1.12)}
    return pools


def _native_pool(n: int, seed: int) -> dict[str, dict[str, torch.Tensor]]:
    from masked_gatys.eyes.datasets import render_set
    from masked_gatys.eyes.layouts import LAYOUTS

    pools = {}
    for look in ("clean",) + tuple(LAYOUTS["mpiigaze"].real_looks):
        gs = render_set(n, layout="mpiigaze", look=look, seed=seed)
        pools[f"mpiigaze/{look}/36x60"] = {"images": (gs.images[:, 0] * 255).round().clamp(0, 255).to(torch.uint8),
                                           "labels": gs.parts.to(torch.uint8)}
    return pools


def load_pools(out: Path, n: int, seed: int, log) -> list[dict[str, torch.Tensor]]:
    pools = []
    for size in ((72, 120), (96, 128)):
        path = out / f"pool-present-{size[0]}x{size[1]}-{n}-{seed}.pt"
        if not path.is_file():
            t = time.time()
            pool = _render_pool(n, seed, size)
            torch.save(pool, path)
            log(f"rendered {n} eyes at {size} in {time.time() - t:.0f} s")
        pools.append(torch.load(path))
    return pools


# ----------------------------------------------------------------------------------- augmentation


def _affine(b: int, g: torch.Generator, zoom: tuple[float, float], centre_from: torch.Tensor,
            labels: torch.Tensor) -> torch.Tensor:
    """Sampling grids' affine matrices (B, 2, 3): zoom about the eye, aspect, rotation, flip."""
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(b, generator=g)  # noqa: E731
    z = torch.exp(u(math.log(zoom[0]), math.log(zoom[1])))
    aspect = torch.exp(u(-0.25, 0.25))
    rot = u(-0.2, 0.2)
    flip = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)
    sx, sy = flip * aspect.sqrt() / z, 1.0 / (aspect.sqrt() * z)
    cos, sin = torch.cos(rot), torch.sin(rot)
    # centre: the eye's (iris's) centre in normalised coordinates, jittered by up to the view's half-size
    cx, cy = centre_from[:, 0], centre_from[:, 1]
    cx = (cx + u(-0.6, 0.6) / z).clamp(-1, 1)
    cy = (cy + u(-0.6, 0.6) / z).clamp(-1, 1)
    theta = torch.stack([torch.stack([sx * cos, -sy * sin, cx], 1), torch.stack([sx * sin, sy * cos, cy], 1)], 1)
    return theta


def _eye_centres(labels: torch.Tensor) -> torch.Tensor:
    """(B, 2) normalised (x, y) of the iris+pupil centroid (the frame's centre where there is none)."""
    b, h, w = labels.shape
    eye = (labels >= 2).float()
    ys = torch.linspace(-1, 1, h).view(1, h, 1)
    xs = torch.linspace(-1, 1, w).view(1, 1, w)
    m = eye.sum((1, 2)).clamp_min(1)
    return torch.stack([(eye * xs).sum((1, 2)) / m, (eye * ys).sum((1, 2)) / m], 1)


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur of (B, 1, H, W); sigma (B,) in pixels."""
    r = 3
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t.view(1, -1) / sigma.clamp_min(1e-3).view(-1, 1)) ** 2)
    k = k / k.sum(1, keepdim=True)
    b = x.shape[0]
    y = F.conv2d(F.pad(x.transpose(0, 1), (r, r, 0, 0), mode="replicate"), k.view(b, 1, 1, -1), groups=b)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(b, 1, -1, 1), groups=b)
    return y.transpose(0, 1)


def _equalise(x: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation per image (rank transform) of (B, 1, H, W) in [0, 1]."""
    b = x.shape[0]
    flat = x.reshape(b, -1)
    ranks = flat.argsort(1).argsort(1).float() / (flat.shape[1] - 1)
    return ranks.reshape_as(x)


def _closed(img: torch.Tensor, lab: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Close the eyes of (B, 1, H, W) images: the opening filled with skin, a lash line through it."""
    b, _, h, w = img.shape
    skin = (lab == 0).float()[:, None]
    level = (img * skin).sum((2, 3), keepdim=True) / skin.sum((2, 3), keepdim=True).clamp_min(1)
    open_ = (lab > 0).float()[:, None]
    soft = _blur(open_, torch.full((b,), 1.0))
    texture = _blur(torch.randn(b, 1, h, w, generator=g) * 0.04, torch.full((b,), 1.5))
    filled = img * (1 - soft) + (level * (0.9 + 0.15 * torch.rand(b, 1, 1, 1, generator=g)) + texture) * soft
    # the lash line: the opening's vertical middle, per column
    ys = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1)
    m = open_.sum(2, keepdim=True)
    mid = (open_ * ys).sum(2, keepdim=True) / m.clamp_min(1)
    mid = mid + (torch.rand(b, 1, 1, 1, generator=g) - 0.3) * m.clamp_min(1) * 0.5
    line = torch.exp(-0.5 * ((ys - mid) / (0.6 + 0.8 * torch.rand(b, 1, 1, 1, generator=g))) ** 2) * (m > 0)
    dark = 0.3 + 0.5 * torch.rand(b, 1, 1, 1, generator=g)
    filled = filled * (1 - dark * line)
    return filled, torch.zeros_like(lab)


def _strokes(img: torch.Tensor, lab: torch.Tensor, g: torch.Generator, n: int = 12) -> torch.Tensor:
    """Dark lash-like strokes on the skin near the lids (near-infrared frames show them)."""
    b, _, h, w = img.shape
    ys = torch.arange(h, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, 1, w)
    out = img.clone()
    for _ in range(n):
        x0 = torch.rand(b, 1, 1, generator=g) * w
        y0 = torch.rand(b, 1, 1, generator=g) * h
        ang = (torch.rand(b, 1, 1, generator=g) - 0.5) * 2.5 + math.pi / 2
        length = (0.1 + 0.25 * torch.rand(b, 1, 1, generator=g)) * h
        dx, dy = torch.cos(ang), torch.sin(ang)
        t = (xs - x0) * dx + (ys - y0) * dy
        inside = (t >= 0) & (t <= length)
        d = ((xs - x0) * dy - (ys - y0) * dx).abs()
        width = 0.3 + 0.7 * torch.rand(b, 1, 1, generator=g)
        s = torch.exp(-0.5 * (d / width) ** 2) * inside * (lab == 0)
        out = out * (1 - 0.6 * s[:, None])
    return out


def augment(images: torch.Tensor, labels: torch.Tensor, g: torch.Generator, size=DEFAULT_SIZE,
            closed_share: float = 0.1, zoom: tuple[float, float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch at ``size``: grey images (B, 1, h, w) in [0, 1] and labels (B, h, w)."""
    b = images.shape[0]
    x = images.float()[:, None] / 255.0
    lab = labels.long()
    # geometry: zoom from the whole frame (0.8) to near-eye frames (the iris fills the height: ~2.8)
    zoom_kind = torch.rand(1, generator=g).item()
    if zoom is None:
        zoom = (0.9, 1.3) if zoom_kind < 0.45 else ((1.2, 1.8) if zoom_kind < 0.75 else (1.8, 3.2))
    theta = _affine(b, g, zoom, _eye_centres(lab), lab)
    grid = F.affine_grid(theta, (b, 1, *size), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    onehot = F.one_hot(lab, 4).permute(0, 3, 1, 2).float()
    soft = F.grid_sample(onehot, grid, mode="bilinear", padding_mode="border", align_corners=False)
    lab = soft.argmax(1)
    soft = soft / soft.sum(1, keepdim=True).clamp_min(1e-6)

    def u(lo, hi, shape=(b, 1, 1, 1)):
        return lo + (hi - lo) * torch.rand(shape, generator=g)

    # per-class brightness: a gain per class, blended by the soft labels
    gains = torch.exp(u(-0.6, 0.6, (b, 4, 1, 1)))
    nir = torch.rand(b, generator=g) < 0.3  # near-infrared: bright iris and sclera, very dark pupil
    gains[nir, 2] = torch.exp(u(0.3, 1.6, (int(nir.sum()), 1, 1)))
    gains[nir, 3] = u(0.2, 0.7, (int(nir.sum()), 1, 1))
    gains[:, 3] = torch.minimum(gains[:, 3], 0.8 * gains[:, 2])  # a pupil is darker than its iris
    x = x * (soft * gains).sum(1, keepdim=True)
    # closed eyes
    closed = torch.rand(b, generator=g) < closed_share
    if closed.any():
        x[closed], lab[closed] = _closed(x[closed], lab[closed], g)
    # lashes
    lashes = torch.rand(b, generator=g) < 0.3
    if lashes.any():
        x[lashes] = _strokes(x[lashes], lab[lashes], g)
    # light ramp
    h, w = size
    ang = u(0, 2 * math.pi)
    ramp = (torch.linspace(-1, 1, w).view(1, 1, 1, w) * torch.cos(ang)
            + torch.linspace(-1, 1, h).view(1, 1, h, 1) * torch.sin(ang))
    x = x * (1 + u(0, 0.5) * ramp).clamp_min(0.2)
    # glints
    for _ in range(2):
        gx, gy = _eye_centres(lab).unbind(1)
        gx = (gx.view(b, 1, 1, 1) + 1) / 2 * (w - 1) + u(-6, 6)
        gy = (gy.view(b, 1, 1, 1) + 1) / 2 * (h - 1) + u(-4, 4)
        sig = u(0.4, 1.5)
        ys = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1)
        xs = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w)
        spot = torch.exp(-0.5 * ((xs - gx) ** 2 + (ys - gy) ** 2) / sig ** 2)
        x = x + spot * u(0, 1.0) * (torch.rand(b, 1, 1, 1, generator=g) < 0.4)
    # blur, low resolution
    x = _blur(x, u(0.01, 1.2).view(b))
    low = torch.rand(b, generator=g) < 0.2
    if low.any():
        f = float(u(0.3, 0.7, (1,)).item())
        small = F.interpolate(x[low], scale_factor=f, mode="area")
        x[low] = F.interpolate(small, size=size, mode="bilinear", align_corners=False)
    # exposure, gamma, contrast, noise
    x = x.clamp(0, 1) * u(0.5, 1.4)
    x = x.clamp(1e-4, 1) ** torch.exp(u(-0.5, 0.5))
    x = (x - 0.5) * u(0.5, 1.3) + 0.5
    x = x + torch.randn(x.shape, generator=g) * u(0, 0.06)
    x = x.clamp(0, 1)
    eq = torch.rand(b, generator=g) < 0.35  # MPIIGaze's patches are histogram-equalised
    if eq.any():
        x[eq] = _equalise(x[eq])
    # quantise to 8 bits (JPEG-like loss is approximated by the blur and the noise)
    x = (x * 255).round() / 255
    return x, lab


# ----------------------------------------------------------------------------------- training


def iou(pred: torch.Tensor, target: torch.Tensor) -> list[float]:
    out = []
    for k in range(4):
        p, t = pred == k, target == k
        union = (p | t).sum().item()
        out.append((p & t).sum().item() / union if union else float("nan"))
    return out


def _batch(pools, n, g):
    pool = pools[int(torch.randint(len(pools), (1,), generator=g))]
    idx = torch.randint(pool["images"].shape[0], (n,), generator=g)
    return pool["images"][idx], pool["labels"][idx], pool.get("zoom")


def validate(net, val_sets) -> dict:
    net.eval()
    res = {}
    with torch.no_grad():
        for name, (x, lab) in val_sets.items():
            pred = torch.cat([net(prepare_input(x[i:i + 256])).argmax(1) for i in range(0, x.shape[0], 256)])
            res[name] = iou(pred, lab)
    net.train()
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--pool", type=int, default=2000, help="renders per present-framing pool")
    ap.add_argument("--layout-pool", type=int, default=600, help="renders per layout and look (if any)")
    ap.add_argument("--val-every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init", type=Path, help="start from this checkpoint's weights (new optimizer)")
    ap.add_argument("--anneal", type=int, metavar="K",
                    help="with --resume: bring the learning rate from where it is to 0 over the next K "
                         "steps (a cosine) and stop there")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    logf = open(a.out / "train.log", "a")

    def log(msg):
        logf.write(f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} {msg}\n")
        logf.flush()

    pools = load_pools(a.out, a.pool, a.seed, log)
    lay_path = a.out / f"pool-layouts-{a.layout_pool}-{a.seed}.pt"
    if lay_path.is_file():
        layouts = torch.load(lay_path)
    else:
        t = time.time()
        layouts = _layout_pool(a.layout_pool, a.seed + 7)
        if layouts:
            torch.save(layouts, lay_path)
            log(f"rendered layouts {sorted(layouts)} in {time.time() - t:.0f} s")
    native_path = a.out / f"pool-native-mpiigaze-{a.layout_pool}-{a.seed}.pt"
    if native_path.is_file():
        native = torch.load(native_path)
    else:  # the mpiigaze layout at its own 36x60 too: its looks' blur and low resolution are per pixel
        t = time.time()
        native = _native_pool(a.layout_pool, a.seed + 9)
        torch.save(native, native_path)
        log(f"rendered native mpiigaze {sorted(native)} in {time.time() - t:.0f} s")
    layouts = {**layouts, **native}
    for name, pool in layouts.items():
        pool["zoom"] = LAYOUT_ZOOM.get(name.split("/")[0], (0.92, 1.12))
    pools = pools + list(layouts.values())
    log(f"pools: {len(pools)} ({', '.join(sorted(layouts)) or 'present framing only'})")

    # validation: held-out seeds, fixed augmentation
    vg = torch.Generator().manual_seed(12345)
    val_pools = [_render_pool(120, 99_000 + a.seed, (72, 120))]
    val_layouts = _layout_pool(60, 99_500 + a.seed)
    val_sets = {}
    for name, pool in [("present", val_pools[0])] + sorted(val_layouts.items()):
        xs, ls = [], []
        for _ in range(2):
            x, lab = augment(pool["images"][:64], pool["labels"][:64], vg, closed_share=0.0, zoom=pool.get("zoom"))
            xs.append(x)
            ls.append(lab)
        val_sets[name] = (torch.cat(xs), torch.cat(ls))
        # the unaugmented layout at the working size too
        if name != "present":
            x = F.interpolate(pool["images"].float()[:, None] / 255, size=DEFAULT_SIZE, mode="bilinear",
                              antialias=True, align_corners=False)
            lab = F.interpolate(pool["labels"].float()[:, None], size=DEFAULT_SIZE, mode="nearest-exact")[:, 0].long()
            val_sets[name + "/plain"] = (x, lab)

    net = SegNet(width=a.width)
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=1e-4)
    step, best = 0, -1.0
    anneal = None  # (first step, steps, learning rate at the first step)
    g = torch.Generator().manual_seed(a.seed)
    last = a.out / "last.pt"
    if a.resume and last.is_file():
        ck = torch.load(last, weights_only=False)
        net.load_state_dict(ck["net"])
        opt.load_state_dict(ck["opt"])
        step, best = ck["step"], ck["best"]
        g.set_state(ck["gen"])
        anneal = ck.get("anneal")
        log(f"resumed at step {step} (best {best:.4f})")
    elif a.init is not None:
        ck = torch.load(a.init, weights_only=True)
        net.load_state_dict(ck["state"])
        log(f"initialised from {a.init.name}")
    if a.anneal:
        lr_now = a.lr * 0.5 * (1 + math.cos(math.pi * min(step / a.steps, 1.0)))
        anneal = (step, a.anneal, lr_now)
        log(f"annealing from step {step} over {a.anneal} steps from lr {lr_now:.2e}")
    last_step = anneal[0] + anneal[1] if anneal else a.steps
    weights = torch.tensor([1.0, 1.0, 1.5, 2.0])
    t0 = time.time()
    net.train()
    while step < last_step:
        # a batch mixes four pools (each augmented at its own size and zoom): one pool per batch
        # gave BatchNorm batch statistics its running averages never see
        parts = []
        for _ in range(4):
            imgs, labs, zoom = _batch(pools, a.batch // 4, g)
            parts.append(augment(imgs, labs, g, zoom=zoom, closed_share=0.1 if zoom is None else 0.03))
        x, lab = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        if anneal:
            lr = anneal[2] * 0.5 * (1 + math.cos(math.pi * min((step - anneal[0]) / anneal[1], 1.0)))
        else:
            lr = a.lr * 0.5 * (1 + math.cos(math.pi * min(step / a.steps, 1.0)))
        for group in opt.param_groups:
            group["lr"] = lr
        logits = net(prepare_input(x))
        loss = F.cross_entropy(logits, lab, weight=weights)
        prob = logits.softmax(1)
        for k in (2, 3):  # soft Dice on iris and pupil: the small classes' boundaries
            t = (lab == k).float()
            inter = (prob[:, k] * t).sum((1, 2))
            dice = 1 - (2 * inter + 1) / (prob[:, k].sum((1, 2)) + t.sum((1, 2)) + 1)
            loss = loss + 0.3 * dice.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            log(f"step {step} loss {loss.item():.4f} lr {lr:.2e} {(time.time() - t0) / 50:.3f} s/step")
            t0 = time.time()
        if step % a.val_every == 0 or step == last_step:
            res = validate(net, val_sets)
            score = float(np.nanmean([v[k] for v in res.values() for k in (2, 3)]))
            rec = {"step": step, "loss": round(loss.item(), 5), "score": round(score, 5),
                   "iou": {k: [round(v, 4) for v in vals] for k, vals in res.items()},
                   "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            with open(a.out / "log.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")
            if score > best:
                best = score
                seg = Segmenter(net)
                seg.identity = {"name": "segmenter", "trained": rec["time"], "step": step, "val_score": rec["score"],
                                "val_iou": rec["iou"], "data": sorted(["present"] + list(layouts)),
                                "script": "scripts/train_segmenter.py", "width": a.width,
                                "batch": a.batch, "lr": a.lr, "seed": a.seed}
                save_segmenter(seg, a.out / "best.pt")
                net.train()
            state = {"net": net.state_dict(), "opt": opt.state_dict(), "step": step, "best": best,
                     "gen": g.get_state(), "anneal": anneal}
            import io

            buf = io.BytesIO()
            torch.save(state, buf)
            atomic_write(last, lambda fh: fh.write(buf.getvalue()))
            log(f"val step {step} score {score:.4f} best {best:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

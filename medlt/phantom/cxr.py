"""2D chest-radiograph-like phantom: a PA chest film with per-patient anatomy and known findings.

Coordinates: U runs from the image's left (-1) to its right (+1), V from the top (-1) to the
bottom (+1). A PA film shows the patient's left on the image's right, so the heart bulges to the
right, the patient's right hemidiaphragm (image left) sits higher, and the aortic knob is on the
image's right. Density D is "whiteness": air outside the body is dark, lungs dark, soft tissue,
heart, bone bright.

`sample_anatomy(rng)` draws one patient's anatomy (keep it for several images of the same
patient). The finding patterns (`PATTERNS`) and which class uses which pattern
(`pattern_for_class`) live in cxr_findings.py; `cxr_render.render_cxr` combines the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def sig(x: np.ndarray) -> np.ndarray:
    """Logistic step, numerically safe."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass
class Anatomy:
    """One patient's chest (all lengths in the normalized [-1, 1] frame)."""

    width: float = 1.0          # thorax width scale
    height: float = 1.0         # thorax height scale
    lung_a: float = 0.30        # lung half-width
    lung_b: float = 0.62        # lung half-height
    lung_cx: float = 0.40       # |centre| of each lung
    lung_cy: float = -0.05
    lung_dark: float = 0.34     # how much darker aerated lung is than soft tissue
    dome_right: float = 0.36    # patient's right hemidiaphragm (image left) dome height
    dome_left: float = 0.42     # patient's left hemidiaphragm (image right)
    dome_curve: float = 0.9     # dome curvature
    heart_cx: float = 0.10
    heart_a: float = 0.27
    heart_b: float = 0.20
    mediastinum_half: float = 0.11
    knob_r: float = 0.06        # aortic knob radius
    knob_cx: float = 0.12
    vessel_gain: float = 1.0
    rib_phase: float = 0.0
    hilum_dy: float = 0.0
    # collapsed fraction of the image-left lung's width (pneumothorax); 1 = no pneumothorax
    ptx_keep: float = 1.0
    # pleural rind thickness (pleural thickening)
    rind: float = 0.0
    vessels: list = field(default_factory=list)  # (side, angle, length) per branch
    contrast: float = 1.0
    brightness: float = 0.0
    gamma: float = 1.0
    noise: float = 0.015


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    """Random healthy anatomy for one patient."""
    a = Anatomy(
        width=rng.uniform(0.93, 1.05), height=rng.uniform(0.94, 1.05),
        lung_a=rng.uniform(0.28, 0.32), lung_b=rng.uniform(0.58, 0.64),
        lung_dark=rng.uniform(0.31, 0.37),
        dome_right=rng.uniform(0.32, 0.40), heart_cx=rng.uniform(0.07, 0.13),
        heart_a=rng.uniform(0.25, 0.29), heart_b=rng.uniform(0.18, 0.21),
        rib_phase=rng.uniform(-0.03, 0.03), contrast=rng.uniform(0.92, 1.08),
        brightness=rng.uniform(-0.03, 0.03), gamma=rng.uniform(0.9, 1.1),
        noise=rng.uniform(0.010, 0.020),
    )
    a.dome_left = a.dome_right + rng.uniform(0.03, 0.08)
    a.vessels = [(side, rng.uniform(-1.2, 1.2), rng.uniform(0.25, 0.45))
                 for side in (-1, 1) for _ in range(7)]
    return a


@dataclass
class Frame:
    """Pixel grid in anatomical coordinates plus the masks findings draw against."""

    U: np.ndarray
    V: np.ndarray
    w: float                      # soft-edge width (about half a pixel)
    anatomy: Anatomy
    body: np.ndarray = None
    lung: dict = None             # side (-1 image left, +1 image right) -> mask
    lung_full: dict = None        # lung extent ignoring pneumothorax collapse
    heart: np.ndarray = None
    mediastinum: np.ndarray = None
    knob: np.ndarray = None

    def dome(self, side: int) -> np.ndarray:
        a = self.anatomy
        base = a.dome_right if side < 0 else a.dome_left
        return base + a.dome_curve * (self.U - side * 0.38) ** 2

    def disc(self, cx: float, cy: float, r: float, ry: float | None = None) -> np.ndarray:
        ry = r if ry is None else ry
        e = np.sqrt(((self.U - cx) / r) ** 2 + ((self.V - cy) / ry) ** 2)
        return sig((1.0 - e) * min(r, ry) / self.w)

    def blob(self, cx: float, cy: float, sx: float, sy: float | None = None) -> np.ndarray:
        sy = sx if sy is None else sy
        return np.exp(-0.5 * (((self.U - cx) / sx) ** 2 + ((self.V - cy) / sy) ** 2))

    def segment(self, x0: float, y0: float, x1: float, y1: float, width: float) -> np.ndarray:
        """Soft line segment of the given half-width, fading from 1 at (x0, y0) to 0.4 at the end."""
        dx, dy = x1 - x0, y1 - y0
        L2 = dx * dx + dy * dy + 1e-12
        ux, vy = self.U - x0, self.V - y0
        t = np.clip((ux * dx + vy * dy) / L2, 0.0, 1.0)
        d2 = (ux - t * dx) ** 2 + (vy - t * dy) ** 2
        return np.exp(d2 * (-0.5 / (width * width))) * (1.0 - 0.6 * t)


def _lung_mask(f: Frame, side: int, keep: float = 1.0) -> np.ndarray:
    a = f.anatomy
    la, lb = a.lung_a - a.rind, a.lung_b - a.rind
    cx = side * (a.lung_cx - a.rind / 2)
    cy = a.lung_cy + a.rind / 2
    if keep < 1.0:  # collapsed lung keeps its medial border
        cx = cx - side * la * (1.0 - keep)
        la = la * keep
    ell = f.disc(cx, cy, la, lb)
    above_dome = sig((f.dome(side) - f.V) / f.w)
    return ell * above_dome


def build_frame(size: int, anatomy: Anatomy, rng: np.random.Generator) -> Frame:
    """Grid with a small per-image pose change (rotation, shift), then the anatomy masks."""
    c = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    v, u = np.meshgrid(c, c, indexing="ij")  # row index -> v (top to bottom), column -> u
    theta = np.deg2rad(rng.uniform(-2.5, 2.5))
    du, dv = rng.uniform(-0.03, 0.03, size=2)
    U = (np.cos(theta) * u + np.sin(theta) * v - du) / anatomy.width
    V = (-np.sin(theta) * u + np.cos(theta) * v - dv) / anatomy.height
    U, V = U.astype(np.float32), V.astype(np.float32)  # float32 throughout: 2x faster
    f = Frame(U=U, V=V, w=max(0.6 * 2.0 / size, 0.004), anatomy=anatomy)
    a = anatomy
    bw = np.minimum(0.86 + 0.04 * V, 0.2 + 3.2 * np.maximum(0.0, V + 0.98))
    f.body = sig((bw - np.abs(U)) / f.w)
    f.heart = f.disc(a.heart_cx, (a.dome_right + a.dome_left) / 2 - 0.14, a.heart_a, a.heart_b)
    upper_med = sig((a.mediastinum_half - np.abs(U - 0.02)) / f.w) * sig((0.25 - V) / f.w)
    knob = f.disc(a.knob_cx, -0.32, a.knob_r)
    not_med = (1.0 - upper_med) * (1.0 - f.heart) * (1.0 - knob)
    f.lung_full = {s: _lung_mask(f, s) * not_med for s in (-1, 1)}
    f.lung = dict(f.lung_full)
    if a.ptx_keep < 1.0:
        f.lung[-1] = _lung_mask(f, -1, a.ptx_keep) * not_med
    f.mediastinum = upper_med
    f.knob = knob
    return f


def base_density(f: Frame) -> np.ndarray:
    """Healthy chest: body, lungs with vessels, mediastinum, heart, spine, ribs, clavicles."""
    a = f.anatomy
    U, V, w = f.U, f.V, f.w
    lungs = f.lung[-1] + f.lung[1]
    D = 0.04 + 0.52 * f.body
    base_soft = 1.0 - 0.25 * sig((V - 0.1) / 0.12)  # bases overlap more soft tissue
    D -= a.lung_dark * lungs * base_soft
    D -= 1.15 * a.lung_dark * (f.lung_full[-1] - f.lung[-1])  # pneumothorax space: air, no lung
    D += 0.06 * f.heart + 0.04 * f.mediastinum + 0.03 * f.knob
    # spine with vertebral bodies
    spine = sig((0.075 - np.abs(U)) / w) * f.body
    D += 0.09 * spine * (0.8 + 0.2 * np.cos(2 * np.pi * V / 0.11))
    # posterior ribs (10 per side), curving down laterally
    absu = np.abs(U)
    bw = np.minimum(0.86 + 0.04 * V, 0.2 + 3.2 * np.maximum(0.0, V + 0.98))
    lateral = sig((absu - 0.09) / w) * sig((bw - 0.04 - absu) / w)
    for i in range(10):
        y0 = -0.64 + i * 0.115 + a.rib_phase
        vr = y0 - 0.25 * absu + 0.6 * absu ** 2
        D += 0.085 * np.exp(-0.5 * ((V - vr) / 0.02) ** 2) * lateral * sig((0.55 - V) / w)
    # clavicles
    vc = -0.70 + 0.14 * absu
    D += 0.13 * np.exp(-0.5 * ((V - vc) / 0.022) ** 2) * sig((absu - 0.06) / w) * sig((0.58 - absu) / w)
    # hila and vessel markings (fan from each hilum; only inside aerated lung)
    for side in (-1, 1):
        hx, hy = side * 0.19, -0.03 + a.hilum_dy
        D += 0.06 * f.blob(hx, hy, 0.05) * f.lung_full[side]
    vess = np.zeros_like(D)
    for side, ang, length in a.vessels:
        hx, hy = side * 0.19, -0.03 + a.hilum_dy
        x1, y1 = hx + side * length * np.cos(ang), hy + length * np.sin(ang)
        vess += f.segment(hx, hy, x1, y1, 0.012)
    D += 0.1 * a.vessel_gain * np.clip(vess, 0, 1.5) * (f.lung[-1] + f.lung[1])
    return D


def finish(D: np.ndarray, f: Frame, rng: np.random.Generator) -> np.ndarray:
    """Texture, blur, quantum noise and exposure -> [0, 1] float32."""
    from scipy.ndimage import gaussian_filter

    a = f.anatomy
    size = D.shape[0]
    tex = gaussian_filter(rng.standard_normal(D.shape), sigma=max(size / 24, 1.0))
    tex /= tex.std() + 1e-9
    D = D + 0.015 * tex * f.body
    D = gaussian_filter(D, sigma=0.5)
    D = D + a.noise * rng.standard_normal(D.shape)
    img = np.clip(a.contrast * D + a.brightness, 0.0, 1.0) ** a.gamma
    return img.astype(np.float32)

"""Finding patterns of the 2D phantom and the class -> pattern map of NIH-CXR-LT and MIMIC-CXR-LT.

Each pattern has a fixed place and look, so classes are separable:

| pattern | what it draws (image sides: PA film, image right = patient's left) |
|---|---|
| infiltration | several patchy ill-defined blobs in both mid zones |
| atelectasis | oblique plate-like band in the image-right mid/lower lung, raised left hemidiaphragm, heart shifted toward it |
| effusion | fluid with a meniscus rising laterally at the image-right lung base |
| nodule | small dense round spot in the image-left upper zone |
| mass | large dense round lesion in the image-right mid zone |
| pneumothorax | image-left lung collapsed medially: white pleural line, black space without vessels laterally |
| consolidation | dense homogeneous opacity of the image-left lower zone with air bronchograms |
| pleural_thickening | pleural rind around both lungs (smaller lungs, dense lateral band, apical caps) |
| cardiomegaly | heart ~1.45x wider (cardiothoracic ratio > 0.55) |
| fibrosis | reticular net in both upper zones, hila pulled up |
| edema | bilateral perihilar "bat-wing" haze and Kerley B lines at the lateral bases |
| tortuous_aorta | large lateral aortic knob and a wavy descending aorta beside the spine |
| emphysema | large hyperlucent lungs, low flat diaphragm, sparse vessels, narrow heart |
| pneumonia | ill-defined airspace patch in the image-right upper zone |
| aortic_calcification | bright curvilinear rim on the aortic knob |
| pneumoperitoneum | black crescents of free air under both hemidiaphragms |
| hernia | round retrocardiac gas bubble with an air-fluid level |
| subcutaneous_emphysema | dark gas streaks in the lateral chest-wall soft tissue and the neck |
| pneumomediastinum | dark stripes outlining the mediastinum and heart, streaks in the neck |
| support_devices | endotracheal tube, nasogastric tube, central line and ECG electrodes (bright) |
| fracture | image-left lateral rib with a step, gap and bright callus |
| enlarged_cardiomediastinum | wide upper mediastinum and a mildly large heart |
| lung_opacity | patchy opacities in both lower zones |

"No Finding" draws nothing. MIMIC's "Lung Lesion" uses the mass pattern and "Pleural Other" the
pleural-thickening pattern (each dataset's classes still map to distinct patterns).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from medlt.data.labels import normalize_class_name
from medlt.phantom.cxr import Anatomy, Frame, sig


@dataclass(frozen=True)
class Pattern:
    modify: Callable[[Anatomy, np.random.Generator], None] | None
    draw: Callable[[Frame, np.random.Generator], np.ndarray] | None
    description: str


def _lungs(f: Frame) -> np.ndarray:
    return f.lung[-1] + f.lung[1]


def _infiltration(f, rng):
    out = np.zeros_like(f.U)
    for side in (-1, 1):
        for _ in range(3):
            cx = side * rng.uniform(0.28, 0.52)
            cy = rng.uniform(-0.2, 0.12)
            out += 0.2 * f.blob(cx, cy, rng.uniform(0.06, 0.09))
    return np.clip(out, 0, 0.3) * _lungs(f)


def _atelectasis_mod(a, rng):
    a.dome_left -= rng.uniform(0.08, 0.12)
    a.heart_cx += 0.03


def _atelectasis(f, rng):
    y = rng.uniform(0.02, 0.12)
    band = np.exp(-0.5 * ((f.V - y + 0.25 * (f.U - 0.4)) / 0.03) ** 2)
    return 0.36 * band * f.lung[1]


def _effusion(f, rng):
    a = f.anatomy
    level = a.dome_left - rng.uniform(0.18, 0.3)
    meniscus = level - 0.6 * np.maximum(0.0, f.U - 0.4) ** 1.2
    fluid = sig((f.V - meniscus) / (2 * f.w))
    return 0.33 * fluid * f.lung_full[1]


def _nodule(f, rng):
    return 0.34 * f.disc(-rng.uniform(0.34, 0.5), rng.uniform(-0.45, -0.28), rng.uniform(0.045, 0.06))


def _mass(f, rng):
    cx, cy, r = rng.uniform(0.38, 0.5), rng.uniform(-0.08, 0.1), rng.uniform(0.12, 0.16)
    lob = f.disc(cx, cy, r) + 0.6 * f.disc(cx + 0.6 * r, cy - 0.4 * r, 0.5 * r)
    return 0.3 * np.clip(lob, 0, 1)


def _pneumothorax_mod(a, rng):
    a.ptx_keep = rng.uniform(0.45, 0.65)


def _pneumothorax(f, rng):
    # white visceral pleural line along the collapsed lung's lateral edge
    edge = f.lung[-1] * (1.0 - f.lung[-1])
    return 0.5 * edge * f.lung_full[-1] + 0.04 * f.lung[-1]


def _consolidation(f, rng):
    top = rng.uniform(-0.12, -0.02)
    region = sig((f.V - top) / (3 * f.w)) * f.lung_full[-1]
    out = 0.4 * region
    for k in range(3):  # air bronchograms
        ang = 1.1 + 0.35 * k + rng.uniform(-0.1, 0.1)
        x0, y0 = -0.2, top + 0.02
        out -= 0.14 * region * f.segment(x0, y0, x0 - 0.35 * np.cos(ang - 0.9), y0 + 0.35 * np.sin(ang),
                                          0.012)
    return out


def _pleural_thickening_mod(a, rng):
    a.rind = rng.uniform(0.05, 0.07)


def _pleural_thickening(f, rng):
    out = np.zeros_like(f.U)
    for side in (-1, 1):  # plaques on the lateral walls
        for _ in range(2):
            out += 0.12 * f.blob(side * rng.uniform(0.62, 0.68), rng.uniform(-0.3, 0.2), 0.03, 0.07)
    return out * f.body


def _cardiomegaly_mod(a, rng):
    a.heart_a *= rng.uniform(1.4, 1.55)
    a.heart_b *= 1.15
    a.heart_cx += 0.05


def _fibrosis_mod(a, rng):
    a.hilum_dy = -0.08
    a.lung_b *= 0.94


def _fibrosis(f, rng):
    ph = rng.uniform(0, np.pi, size=2)
    net = np.abs(np.sin(np.pi * f.U / 0.07 + ph[0])) ** 6 + np.abs(np.sin(np.pi * f.V / 0.07 + ph[1])) ** 6
    upper = sig((-0.12 - f.V) / (3 * f.w))
    return (0.16 * np.clip(net, 0, 1) + 0.08) * upper * _lungs(f)


def _edema(f, rng):
    haze = f.blob(-0.22, 0.0, 0.17, 0.22) + f.blob(0.22, 0.0, 0.17, 0.22)
    out = 0.24 * haze * _lungs(f)
    for side in (-1, 1):
        for k in range(4):
            y = 0.12 + 0.06 * k + rng.uniform(-0.015, 0.015)
            out += 0.16 * f.segment(side * 0.72, y, side * 0.56, y, 0.01) * f.lung_full[side]
    return out


def _tortuous_aorta_mod(a, rng):
    a.knob_r = rng.uniform(0.085, 0.1)
    a.knob_cx = rng.uniform(0.2, 0.24)


def _tortuous_aorta(f, rng):
    ph = rng.uniform(0, 2 * np.pi)
    x = 0.14 + 0.06 * np.sin(2 * np.pi * f.V / 0.5 + ph)
    band = np.exp(-0.5 * ((f.U - x) / 0.04) ** 2) * sig((f.V + 0.3) / f.w) * sig((0.25 - f.V) / f.w)
    return 0.3 * band * f.lung_full[1]


def _emphysema_mod(a, rng):
    a.lung_a *= 1.07
    a.lung_b *= 1.1
    a.dome_right += 0.1
    a.dome_left += 0.1
    a.dome_curve = 0.3
    a.lung_dark *= 1.3
    a.vessel_gain = 0.35
    a.heart_a *= 0.85


def _pneumonia(f, rng):
    cx, cy = rng.uniform(0.36, 0.48), rng.uniform(-0.38, -0.24)
    return 0.4 * f.blob(cx, cy, 0.12, 0.1) * f.lung_full[1]


def _aortic_calcification(f, rng):
    a = f.anatomy
    r = np.hypot(f.U - a.knob_cx, f.V + 0.32)
    rim = np.exp(-0.5 * ((r - a.knob_r - 0.015) / 0.014) ** 2) * sig((-0.3 - f.V) / f.w)
    return 0.5 * rim


def _pneumoperitoneum(f, rng):
    out = np.zeros_like(f.U)
    for side in (-1, 1):
        d = f.dome(side) + 0.01
        t = rng.uniform(0.05, 0.07)
        crescent = sig((f.V - d) / f.w) * sig((d + t - f.V) / f.w)
        crescent = crescent * sig((0.68 - np.abs(f.U - side * 0.4) * 2.2) / f.w)
        out -= 0.42 * crescent
    return out * f.body


def _hernia(f, rng):
    a = f.anatomy
    cx, cy, r = rng.uniform(-0.02, 0.06), (a.dome_right + a.dome_left) / 2 - 0.12, rng.uniform(0.1, 0.12)
    disc = f.disc(cx, cy, r)
    air = disc * sig((cy + 0.01 - f.V) / f.w)
    return -0.34 * air - 0.06 * disc


def _subcutaneous_emphysema(f, rng):
    out = np.zeros_like(f.U)
    for side in (-1, 1):
        for _ in range(7):
            out += f.blob(side * rng.uniform(0.72, 0.84), rng.uniform(-0.7, 0.35), 0.018, 0.06)
    for _ in range(4):  # neck
        out += f.blob(rng.uniform(-0.15, 0.15), rng.uniform(-0.98, -0.8), 0.015, 0.05)
    return -0.38 * np.clip(out, 0, 1) * f.body


def _pneumomediastinum(f, rng):
    a = f.anatomy
    stripe = np.exp(-0.5 * ((np.abs(f.U - 0.02) - a.mediastinum_half - 0.015) / 0.013) ** 2)
    stripe = stripe * sig((0.05 - f.V) / f.w) * sig((f.V + 0.75) / f.w)
    heart_rim = f.heart * (1.0 - f.heart) * 4.0 * sig((a.dome_right - 0.12 - f.V) / f.w)
    neck = sum(f.segment(x, -0.98, x + 0.02, -0.76, 0.012) for x in (-0.1, -0.04, 0.06, 0.12))
    return -(0.3 * stripe + 0.25 * heart_rim + 0.25 * np.clip(neck, 0, 1)) * f.body


def _support_devices(f, rng):
    x = rng.uniform(-0.02, 0.02)
    ett = f.segment(x, -1.2, x, rng.uniform(-0.5, -0.42), 0.012)
    ngt = f.segment(0.05, -1.2, 0.05, 0.45, 0.01) + f.segment(0.05, 0.45, 0.3, 0.62, 0.01)
    line = f.segment(-0.6, -0.72, -0.2, -0.55, 0.01) + f.segment(-0.2, -0.55, -0.04, -0.2, 0.01)
    dots = sum(f.disc(rng.uniform(-0.6, 0.6), rng.uniform(-0.5, 0.5), 0.03) for _ in range(3))
    return 0.5 * np.clip(ett + 0.8 * ngt + 0.8 * line, 0, 1) + 0.55 * dots


def _fracture(f, rng):
    i = int(rng.integers(3, 6))
    y0 = -0.64 + i * 0.115 + f.anatomy.rib_phase
    x = -rng.uniform(0.55, 0.65)
    vr = y0 - 0.08 * abs(x) + 0.38 * x ** 2
    callus = 0.32 * f.disc(x, vr, 0.045, 0.035)
    gap = -0.12 * f.blob(x + 0.02, vr, 0.012, 0.03)
    step = 0.1 * f.segment(x - 0.02, vr + 0.04, x - 0.16, vr + 0.06, 0.015)
    return callus + gap + step


def _enlarged_cardiomediastinum_mod(a, rng):
    a.mediastinum_half = rng.uniform(0.19, 0.23)
    a.heart_a *= 1.15


def _lung_opacity(f, rng):
    out = np.zeros_like(f.U)
    for side in (-1, 1):
        for _ in range(3):
            out += 0.22 * f.blob(side * rng.uniform(0.3, 0.55), rng.uniform(0.1, 0.28), rng.uniform(0.06, 0.08))
    return np.clip(out, 0, 0.32) * (f.lung_full[-1] + f.lung_full[1])


PATTERNS: dict[str, Pattern] = {
    "infiltration": Pattern(None, _infiltration, "patchy blobs, both mid zones"),
    "atelectasis": Pattern(_atelectasis_mod, _atelectasis, "plate band image-right + raised hemidiaphragm"),
    "effusion": Pattern(None, _effusion, "meniscus at the image-right lung base"),
    "nodule": Pattern(None, _nodule, "small round spot, image-left upper zone"),
    "mass": Pattern(None, _mass, "large round lesion, image-right mid zone"),
    "pneumothorax": Pattern(_pneumothorax_mod, _pneumothorax, "image-left lung collapsed, pleural line"),
    "consolidation": Pattern(None, _consolidation, "dense image-left lower zone, air bronchograms"),
    "pleural_thickening": Pattern(_pleural_thickening_mod, _pleural_thickening, "pleural rind, both lungs"),
    "cardiomegaly": Pattern(_cardiomegaly_mod, None, "heart ~1.45x wider"),
    "fibrosis": Pattern(_fibrosis_mod, _fibrosis, "reticular net, both upper zones"),
    "edema": Pattern(None, _edema, "perihilar haze + Kerley B lines"),
    "tortuous_aorta": Pattern(_tortuous_aorta_mod, _tortuous_aorta, "big aortic knob, wavy aorta"),
    "emphysema": Pattern(_emphysema_mod, None, "large hyperlucent lungs, flat diaphragm"),
    "pneumonia": Pattern(None, _pneumonia, "airspace patch, image-right upper zone"),
    "aortic_calcification": Pattern(None, _aortic_calcification, "bright rim on the aortic knob"),
    "pneumoperitoneum": Pattern(None, _pneumoperitoneum, "free air under both hemidiaphragms"),
    "hernia": Pattern(None, _hernia, "retrocardiac gas bubble with fluid level"),
    "subcutaneous_emphysema": Pattern(None, _subcutaneous_emphysema, "gas streaks in chest wall and neck"),
    "pneumomediastinum": Pattern(None, _pneumomediastinum, "dark stripes along the mediastinum"),
    "support_devices": Pattern(None, _support_devices, "tubes, line and ECG electrodes"),
    "fracture": Pattern(None, _fracture, "rib step with callus, image-left"),
    "enlarged_cardiomediastinum": Pattern(_enlarged_cardiomediastinum_mod, None, "wide upper mediastinum"),
    "lung_opacity": Pattern(None, _lung_opacity, "patchy opacities, both lower zones"),
}

#: normalized class name -> pattern (None = no finding)
_CLASS_PATTERN = {
    "no finding": None,
    "infiltration": "infiltration",
    "atelectasis": "atelectasis",
    "effusion": "effusion",
    "pleural effusion": "effusion",
    "nodule": "nodule",
    "mass": "mass",
    "lung lesion": "mass",
    "pneumothorax": "pneumothorax",
    "consolidation": "consolidation",
    "pleural thickening": "pleural_thickening",
    "pleural other": "pleural_thickening",
    "cardiomegaly": "cardiomegaly",
    "fibrosis": "fibrosis",
    "edema": "edema",
    "tortuous aorta": "tortuous_aorta",
    "emphysema": "emphysema",
    "pneumonia": "pneumonia",
    "calcification of the aorta": "aortic_calcification",
    "pneumoperitoneum": "pneumoperitoneum",
    "hernia": "hernia",
    "subcutaneous emphysema": "subcutaneous_emphysema",
    "pneumomediastinum": "pneumomediastinum",
    "support devices": "support_devices",
    "fracture": "fracture",
    "enlarged cardiomediastinum": "enlarged_cardiomediastinum",
    "lung opacity": "lung_opacity",
}


def pattern_for_class(name: str) -> str | None:
    """The phantom pattern a class shows (None for "No Finding"); KeyError for unknown classes."""
    key = normalize_class_name(name)
    if key not in _CLASS_PATTERN:
        raise KeyError(f"no phantom finding pattern for class '{name}'")
    return _CLASS_PATTERN[key]


def patterns_for_labels(class_names, positives) -> list[str]:
    """Pattern names for the positive classes of one image (duplicates and No Finding dropped)."""
    out: list[str] = []
    for name, pos in zip(class_names, positives, strict=True):
        if int(pos):
            p = pattern_for_class(name)
            if p is not None and p not in out:
                out.append(p)
    return out

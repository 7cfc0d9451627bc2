"""3D chest-CT-like phantom in Hounsfield units with CT-RATE's 18 findings.

Array axes (X, Y, Z) are RAS: index x grows toward the patient's Right, y toward Anterior, z toward
Superior (so the heart, on the patient's left, sits at low x; the spine at low y; the lung apices
at high z). Normalized coordinates x, y, z run over [-1, 1] along each axis.

Tissues (HU): air -1000, lung about -850 with vessels, subcutaneous/mediastinal fat about -100,
muscle/soft tissue 40, heart and aorta 40, liver 60, cancellous bone 250, cortical bone/ribs
600-700, with 12 HU noise and a slight partial-volume blur.

Findings (`CT_PATTERNS`, keyed by the CT-RATE class name, data_manifests order):

| class | pattern |
|---|---|
| Medical material | metal (2500 HU) sternal wires and a pacemaker lead in the right heart |
| Arterial wall calcification | 500 HU rim on the aortic arch and descending aorta |
| Cardiomegaly | heart 1.35x larger |
| Pericardial effusion | 10 HU fluid shell around the heart (replaces epicardial fat) |
| Coronary artery wall calcification | 600 HU spots on the anterior-left heart surface |
| Hiatal hernia | gas/fluid sac behind the heart just above the diaphragm |
| Lymphadenopathy | enlarged 45 HU nodes beside the trachea and below the carina |
| Emphysema | lungs about -950 HU with bullae of -995 HU in the upper zones |
| Atelectasis | collapsed (20 HU) posterior base of the right lung |
| Lung nodule | small solid (30 HU) sphere in the left upper lung |
| Lung opacity | ground-glass (-500 HU) patch in the right mid lung |
| Pulmonary fibrotic sequela | subpleural reticulation (-300 HU) in the lower lungs |
| Pleural effusion | dependent 15 HU fluid layer at both posterior lung bases |
| Mosaic attenuation pattern | lobular patchwork of -930 / -760 HU |
| Peribronchial thickening | thick-walled (40 HU) bronchi near both hila |
| Consolidation | dense (35 HU) anterior left lower lung with air bronchograms |
| Bronchiectasis | dilated air-filled bronchi with walls in the lower lungs |
| Interlobular septal thickening | polygonal -350 HU septal lines at the lung periphery |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from medlt.data.labels import normalize_class_name


@dataclass
class CTAnatomy:
    body_rx: float = 0.88
    body_ry: float = 0.62
    lung_cx: float = 0.42
    lung_rx: float = 0.31
    lung_ry: float = 0.45
    dome_right: float = -0.42   # patient's right hemidiaphragm (x > 0), z of the dome top
    dome_left: float = -0.5
    heart: tuple = (-0.12, 0.2, -0.3)
    heart_r: tuple = (0.3, 0.26, 0.28)
    lung_hu: float = -850.0
    noise_hu: float = 12.0
    seed: int = 0
    extras: dict = field(default_factory=dict)


def sample_ct_anatomy(rng: np.random.Generator) -> CTAnatomy:
    a = CTAnatomy(
        body_rx=rng.uniform(0.84, 0.9), body_ry=rng.uniform(0.58, 0.65),
        lung_cx=rng.uniform(0.4, 0.44), lung_rx=rng.uniform(0.29, 0.32), lung_ry=rng.uniform(0.42, 0.47),
        dome_right=rng.uniform(-0.46, -0.36), lung_hu=rng.uniform(-870, -830),
        seed=int(rng.integers(0, 2**31)),
    )
    a.dome_left = a.dome_right - rng.uniform(0.04, 0.1)
    a.heart = (rng.uniform(-0.15, -0.09), rng.uniform(0.17, 0.23), rng.uniform(-0.34, -0.26))
    s = rng.uniform(0.93, 1.05)
    a.heart_r = (0.3 * s, 0.26 * s, 0.28 * s)
    return a


class Grid:
    """Normalized coordinates of an (X, Y, Z) volume and shape helpers."""

    def __init__(self, shape: tuple[int, int, int]):
        axes = [(np.arange(n) + 0.5) / n * 2.0 - 1.0 for n in shape]
        self.x, self.y, self.z = np.meshgrid(*axes, indexing="ij")
        self.shape = shape

    def ellipsoid(self, c, r) -> np.ndarray:
        return (((self.x - c[0]) / r[0]) ** 2 + ((self.y - c[1]) / r[1]) ** 2
                + ((self.z - c[2]) / r[2]) ** 2) <= 1.0

    def ell_r(self, c, r) -> np.ndarray:
        """Normalized ellipsoid radius (1 on the surface)."""
        return np.sqrt(((self.x - c[0]) / r[0]) ** 2 + ((self.y - c[1]) / r[1]) ** 2
                       + ((self.z - c[2]) / r[2]) ** 2)

    def tube_z(self, cx, cy, r, z0, z1) -> np.ndarray:
        return (np.hypot(self.x - cx, self.y - cy) <= r) & (self.z >= z0) & (self.z <= z1)

    def segment(self, p0, p1, r) -> np.ndarray:
        p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
        d = p1 - p0
        t = ((self.x - p0[0]) * d[0] + (self.y - p0[1]) * d[1] + (self.z - p0[2]) * d[2]) / (d @ d)
        t = np.clip(t, 0, 1)
        dist = np.sqrt((self.x - p0[0] - t * d[0]) ** 2 + (self.y - p0[1] - t * d[1]) ** 2
                       + (self.z - p0[2] - t * d[2]) ** 2)
        return dist <= r


@dataclass
class Body:
    """The healthy volume and the masks findings paint on."""

    g: Grid
    a: CTAnatomy
    hu: np.ndarray
    lung: dict          # side (+1 patient right, -1 patient left) -> bool mask
    heart: np.ndarray
    dome: dict


def _lung_mask(g: Grid, a: CTAnatomy, side: int) -> tuple[np.ndarray, np.ndarray]:
    cx = side * a.lung_cx
    base = a.dome_right if side > 0 else a.dome_left
    q = ((g.x - cx) / a.lung_rx) ** 2 + ((g.y - 0.02) / a.lung_ry) ** 2
    # cross-section narrows toward the apex (z > 0.55)
    taper = np.sqrt(np.clip((0.95 - g.z) / 0.4, 0.0, 1.0))
    inside_xy = q <= np.where(g.z > 0.55, taper ** 2, 1.0)
    dome = base - 0.35 * q  # dome highest centrally, recesses lower at the periphery
    return inside_xy & (g.z >= dome) & (g.z <= 0.93), dome


def base_volume(shape: tuple[int, int, int], a: CTAnatomy) -> Body:
    g = Grid(shape)
    x, y, z = g.x, g.y, g.z
    hu = np.full(shape, -1000.0)
    body_q = (x / a.body_rx) ** 2 + (y / a.body_ry) ** 2
    body = body_q <= 1.0
    hu[body] = -100.0                     # subcutaneous fat
    hu[body_q <= 0.86] = 40.0             # muscle / soft tissue
    lungs, domes = {}, {}
    for side in (1, -1):
        lungs[side], domes[side] = _lung_mask(g, a, side)
    mediastinum = (np.abs(x + 0.02) < 0.2) & (y > -0.38) & (y < 0.5) & (z > -0.55) & body
    hu[mediastinum] = -90.0               # mediastinal fat
    # abdomen below the diaphragm: liver on the patient's right, stomach on the left
    below = body & (z < np.where(x > 0, domes[1], domes[-1])) & (body_q <= 0.86)
    hu[below] = 40.0
    hu[below & (x > -0.1)] = 60.0
    stomach = g.ellipsoid((-0.45, 0.1, -0.8), (0.22, 0.25, 0.25)) & below
    hu[stomach] = 30.0
    hu[stomach & (z > -0.65)] = -1000.0  # gastric air
    # lungs with parenchymal texture and vessels
    rng = np.random.default_rng(a.seed)
    from scipy.ndimage import gaussian_filter

    tex = gaussian_filter(rng.standard_normal(shape), 1.0)
    tex /= tex.std() + 1e-9
    vess = gaussian_filter(rng.standard_normal(shape), 0.8)
    vess = vess > np.quantile(vess, 0.93)
    for side in (1, -1):
        m = lungs[side]
        hu[m] = a.lung_hu + 20.0 * tex[m]
        hu[m & vess] = -150.0
    # heart with epicardial fat, aorta, trachea, bronchi
    heart = g.ellipsoid(a.heart, a.heart_r)
    fat_shell = g.ellipsoid(a.heart, tuple(r + 0.05 for r in a.heart_r)) & ~heart
    hu[fat_shell] = -100.0
    hu[heart] = 40.0
    hu[g.tube_z(0.02, 0.12, 0.08, -0.15, 0.45)] = 40.0          # ascending aorta
    hu[g.segment((0.02, 0.12, 0.45), (-0.1, -0.3, 0.45), 0.08)] = 40.0  # arch
    hu[g.tube_z(-0.1, -0.3, 0.075, -0.85, 0.45)] = 40.0          # descending aorta
    hu[g.tube_z(0.0, 0.02, 0.06, 0.3, 1.0) & body] = -1000.0      # trachea
    for side in (1, -1):
        hu[g.segment((0.0, 0.02, 0.3), (side * 0.22, 0.0, 0.1), 0.04)] = -1000.0  # main bronchi
    # spine: cortical rim, cancellous body, discs, canal
    vb = np.hypot(x, y + 0.45) <= 0.12
    hu[vb & body] = 700.0
    hu[(np.hypot(x, y + 0.45) <= 0.09) & body] = 250.0
    disc = (np.abs(((z + 1.0) % 0.16) - 0.08) < 0.02) & vb
    hu[disc & body] = 80.0
    hu[(np.hypot(x, y + 0.62) <= 0.05) & body] = 20.0
    # ribs: rings near the body wall, sloping down anteriorly; sternum
    ring = (body_q >= 0.72) & (body_q <= 0.84) & ~((np.abs(x) < 0.25) & (y > 0.3))
    for k in range(10):
        zk = -0.85 + 0.18 * k - 0.3 * (y + 0.6)
        hu[ring & (np.abs(z - zk) < 0.04)] = 600.0
    sternum = (np.abs(x) < 0.08) & (np.abs(y - (a.body_ry - 0.09)) < 0.04) & (z > -0.35) & (z < 0.65)
    hu[sternum] = 400.0
    return Body(g=g, a=a, hu=hu, lung=lungs, heart=heart, dome=domes)


# ---------------------------------------------------------------------------------------- findings
def _medical_material(b: Body, rng):
    g = b.g
    for zz in (-0.2, 0.05, 0.3):
        b.hu[g.ellipsoid((0.0, b.a.body_ry - 0.09, zz), (0.06, 0.05, 0.03))] = 2500.0
    hc = b.a.heart
    b.hu[g.segment((0.35, 0.1, 0.7), (hc[0] + 0.1, hc[1], hc[2] - 0.1), 0.035)] = 2500.0


def _arterial_calcification(b: Body, rng):
    g = b.g
    r = np.hypot(g.x + 0.1, g.y + 0.3)
    rim = (r > 0.06) & (r <= 0.095) & (g.z > -0.85) & (g.z < 0.45)
    keep = rng.random(g.shape) < 0.6
    b.hu[rim & keep & (np.cos(6 * g.z + rng.uniform(0, 6)) > 0)] = 500.0


def _cardiomegaly_mod(a: CTAnatomy, rng):
    a.heart_r = tuple(r * 1.35 for r in a.heart_r)


def _pericardial_effusion(b: Body, rng):
    g, a = b.g, b.a
    shell = g.ellipsoid(a.heart, tuple(r + 0.08 for r in a.heart_r)) & ~b.heart
    b.hu[shell] = 10.0


def _coronary_calcification(b: Body, rng):
    g, a = b.g, b.a
    for _ in range(4):
        th = rng.uniform(0.3, 1.3)
        ph = rng.uniform(-0.6, 0.4)
        p = (a.heart[0] - a.heart_r[0] * np.cos(th) * 0.95,
             a.heart[1] + a.heart_r[1] * np.sin(th) * 0.95,
             a.heart[2] + a.heart_r[2] * ph)
        b.hu[g.ellipsoid(p, (0.05, 0.05, 0.05))] = 600.0


def _hiatal_hernia(b: Body, rng):
    g = b.g
    c = (-0.05, -0.12, b.a.dome_left + 0.02)
    r = (0.19, 0.15, 0.17)
    sac = g.ellipsoid(c, r)
    b.hu[sac] = 40.0  # wall
    inner = g.ell_r(c, r) <= 0.85
    b.hu[inner] = 20.0  # fluid
    b.hu[inner & (g.z > c[2] - 0.03)] = -1000.0  # gas above the air-fluid level


def _lymphadenopathy(b: Body, rng):
    g = b.g
    for c in ((0.1, 0.05, 0.35), (-0.1, 0.08, 0.4), (0.0, -0.05, 0.15)):
        c = (c[0] + rng.uniform(-0.02, 0.02), c[1], c[2] + rng.uniform(-0.03, 0.03))
        b.hu[g.ellipsoid(c, (0.08, 0.08, 0.08))] = 45.0


def _emphysema(b: Body, rng):
    g = b.g
    lung = b.lung[1] | b.lung[-1]
    b.hu[lung] = b.hu[lung] - (b.a.lung_hu + 950.0)
    for _ in range(5):
        side = rng.choice([-1, 1])
        c = (side * rng.uniform(0.3, 0.5), rng.uniform(-0.2, 0.2), rng.uniform(0.3, 0.7))
        b.hu[g.ellipsoid(c, (0.1, 0.1, 0.1)) & lung] = -995.0


def _atelectasis(b: Body, rng):
    g = b.g
    m = b.lung[1] & (g.y < -0.18) & (g.z < b.dome[1] + 0.3)
    b.hu[m] = 20.0


def _lung_nodule(b: Body, rng):
    g = b.g
    c = (-rng.uniform(0.35, 0.5), rng.uniform(-0.1, 0.15), rng.uniform(0.3, 0.55))
    b.hu[g.ellipsoid(c, (0.07, 0.07, 0.07))] = 30.0


def _lung_opacity(b: Body, rng):
    g = b.g
    c = (rng.uniform(0.35, 0.5), rng.uniform(-0.05, 0.15), rng.uniform(-0.05, 0.2))
    m = g.ellipsoid(c, (0.2, 0.22, 0.2)) & b.lung[1]
    b.hu[m] = -500.0 + 30.0 * rng.standard_normal(int(m.sum()))


def _fibrotic_sequela(b: Body, rng):
    g = b.g
    for side in (1, -1):
        q = np.sqrt(((g.x - side * b.a.lung_cx) / b.a.lung_rx) ** 2 + ((g.y - 0.02) / b.a.lung_ry) ** 2)
        strands = np.cos(np.arctan2(g.y, g.x - side * b.a.lung_cx) * 14 + rng.uniform(0, 6)) > 0.3
        m = b.lung[side] & (q > 0.7) & (g.z < 0.1) & strands
        b.hu[m] = -300.0


def _pleural_effusion(b: Body, rng):
    g = b.g
    for side in (1, -1):
        level = -0.1 - 0.6 * (g.z - b.dome[side])  # fluid layers posteriorly, deepest at the base
        m = b.lung[side] & (g.y < np.minimum(level, 0.0)) & (g.z < 0.1)
        b.hu[m] = 15.0


def _mosaic(b: Body, rng):
    g = b.g
    lung = b.lung[1] | b.lung[-1]
    cell = 0.22
    ph = rng.uniform(0, cell, size=3)
    parity = (np.floor((g.x + ph[0]) / cell) + np.floor((g.y + ph[1]) / cell)
              + np.floor((g.z + ph[2]) / cell)) % 2
    b.hu[lung & (parity == 0)] = -930.0
    b.hu[lung & (parity == 1)] = -760.0


def _peribronchial(b: Body, rng):
    g = b.g
    for side in (1, -1):
        for k in range(3):
            p0 = (side * 0.22, 0.0, 0.1 - 0.05 * k)
            p1 = (side * (0.42 + 0.05 * k), rng.uniform(-0.2, 0.2), -0.2 + 0.15 * k)
            wall = g.segment(p0, p1, 0.07)
            lumen = g.segment(p0, p1, 0.03)
            b.hu[wall] = 40.0
            b.hu[lumen] = -1000.0


def _consolidation(b: Body, rng):
    g = b.g
    m = b.lung[-1] & (g.y > -0.1) & (g.z < b.dome[-1] + 0.45)
    b.hu[m] = 35.0
    for k in range(2):
        p0 = (-0.3, 0.0, b.dome[-1].max() + 0.35)
        p1 = (-0.45 - 0.05 * k, 0.25 + 0.05 * k, -0.45)
        b.hu[g.segment(p0, p1, 0.03) & m] = -950.0


def _bronchiectasis(b: Body, rng):
    g = b.g
    for side in (1, -1):
        for k in range(3):
            cx = side * (0.3 + 0.08 * k)
            cy = rng.uniform(-0.2, 0.15)
            wall = g.tube_z(cx, cy, 0.075, -0.4, 0.05) & b.lung[side]
            lumen = g.tube_z(cx, cy, 0.05, -0.4, 0.05) & b.lung[side]
            b.hu[wall] = 40.0
            b.hu[lumen] = -1000.0


def _septal_thickening(b: Body, rng):
    g = b.g
    s = 0.1
    ph = rng.uniform(0, s, size=3)
    lines = ((np.abs(((g.x + ph[0]) % s) - s / 2) < 0.018) | (np.abs(((g.y + ph[1]) % s) - s / 2) < 0.018)
             | (np.abs(((g.z + ph[2]) % s) - s / 2) < 0.018))
    for side in (1, -1):
        q = np.sqrt(((g.x - side * b.a.lung_cx) / b.a.lung_rx) ** 2 + ((g.y - 0.02) / b.a.lung_ry) ** 2)
        b.hu[b.lung[side] & (q > 0.6) & lines] = -350.0


@dataclass(frozen=True)
class CTPattern:
    modify: Callable | None
    draw: Callable | None


CT_PATTERNS: dict[str, CTPattern] = {
    "Medical material": CTPattern(None, _medical_material),
    "Arterial wall calcification": CTPattern(None, _arterial_calcification),
    "Cardiomegaly": CTPattern(_cardiomegaly_mod, None),
    "Pericardial effusion": CTPattern(None, _pericardial_effusion),
    "Coronary artery wall calcification": CTPattern(None, _coronary_calcification),
    "Hiatal hernia": CTPattern(None, _hiatal_hernia),
    "Lymphadenopathy": CTPattern(None, _lymphadenopathy),
    "Emphysema": CTPattern(None, _emphysema),
    "Atelectasis": CTPattern(None, _atelectasis),
    "Lung nodule": CTPattern(None, _lung_nodule),
    "Lung opacity": CTPattern(None, _lung_opacity),
    "Pulmonary fibrotic sequela": CTPattern(None, _fibrotic_sequela),
    "Pleural effusion": CTPattern(None, _pleural_effusion),
    "Mosaic attenuation pattern": CTPattern(None, _mosaic),
    "Peribronchial thickening": CTPattern(None, _peribronchial),
    "Consolidation": CTPattern(None, _consolidation),
    "Bronchiectasis": CTPattern(None, _bronchiectasis),
    "Interlobular septal thickening": CTPattern(None, _septal_thickening),
}
_BY_KEY = {normalize_class_name(k): v for k, v in CT_PATTERNS.items()}

#: order findings are painted in (parenchymal patterns first, so focal ones stay visible)
_PAINT_ORDER = ("Mosaic attenuation pattern", "Emphysema", "Interlobular septal thickening",
                "Pulmonary fibrotic sequela", "Lung opacity", "Bronchiectasis", "Peribronchial thickening",
                "Consolidation", "Atelectasis", "Pleural effusion", "Lung nodule", "Pericardial effusion",
                "Lymphadenopathy", "Hiatal hernia", "Arterial wall calcification",
                "Coronary artery wall calcification", "Medical material", "Cardiomegaly")


def render_ct(findings: list[str], shape: tuple[int, int, int], rng: np.random.Generator,
              anatomy: CTAnatomy | None = None, *, smooth: float = 0.5) -> np.ndarray:
    """One chest CT (float32 (X, Y, Z) in HU, RAS) with the named CT-RATE findings."""
    from scipy.ndimage import gaussian_filter

    if min(shape) < 8:
        raise ValueError(f"volume shape {shape} too small (>= 8 per axis)")
    keys = [normalize_class_name(f) for f in findings]
    unknown = [f for f, k in zip(findings, keys, strict=True) if k not in _BY_KEY]
    if unknown:
        raise KeyError(f"no CT phantom pattern for {unknown}")
    a = replace(sample_ct_anatomy(rng) if anatomy is None else anatomy)
    for k in keys:
        if _BY_KEY[k].modify is not None:
            _BY_KEY[k].modify(a, rng)
    b = base_volume(shape, a)
    for name in _PAINT_ORDER:
        if normalize_class_name(name) in keys and CT_PATTERNS[name].draw is not None:
            CT_PATTERNS[name].draw(b, rng)
    hu = gaussian_filter(b.hu, smooth) if smooth > 0 else b.hu
    hu = hu + a.noise_hu * rng.standard_normal(shape)
    return np.clip(hu, -1024.0, 3071.0).astype(np.float32)

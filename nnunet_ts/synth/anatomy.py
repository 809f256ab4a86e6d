"""Thorax anatomy as a tissue label map: body, fat, muscle, ribs, spine, sternum, mediastinum,
heart, great vessels, trachea, lungs, diaphragm with the upper abdomen below, and the CT table.

All sizes are mm in the patient frame of :mod:`nnunet_ts.synth.grid` (x left, y posterior, z up;
z = 0 at mid-lung). Axial cross-sections are superellipses/ellipses computed once in 2D and
broadcast along z; only what changes with height (lung apices, diaphragm domes, heart, ribs,
discs, tubes) is computed in 3D.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from nnunet_ts.synth.config import SynthConfig
from nnunet_ts.synth.grid import Grid, superellipse_radius, tube_occupancy


class Tissue(IntEnum):
    """Labels of the tissue map (uint8). HU per label: :mod:`nnunet_ts.synth.hu`."""

    AIR = 0
    FAT = 1              # subcutaneous fat
    MUSCLE = 2           # chest wall, paraspinal muscles, esophagus, spinal canal
    LUNG = 3             # lung field (parenchyma; vessels and tumours are drawn into it)
    MEDIASTINAL_FAT = 4
    HEART = 5
    GREAT_VESSEL = 6     # aorta, vena cava, pulmonary trunk and arteries, pulmonary veins
    AIRWAY = 7           # trachea and main bronchi lumen
    BONE_CORTEX = 8
    BONE_MARROW = 9
    DISC = 10            # intervertebral disc
    LIVER = 11
    ABDOMEN = 12         # stomach / spleen under the left dome
    TABLE_SHELL = 13
    TABLE_CORE = 14


@dataclass(frozen=True)
class Tube:
    """A straight tapered tube (capsule) of one tissue, patient-frame mm (z, y, x)."""

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    radius: float
    tissue: Tissue


@dataclass(frozen=True)
class Anatomy:
    """One patient's thorax; lengths in mm, patient frame, ``*_cy`` are y centres."""

    body_a: float                 # body semi-axis, lateral
    body_b: float                 # body semi-axis, antero-posterior
    body_p: float                 # superellipse exponent of the body outline (> 2: boxier)
    fat: float                    # subcutaneous fat thickness
    cav_a: float                  # thoracic cavity (inside the ribs) semi-axes and y centre
    cav_b: float
    cav_cy: float
    rib_thickness: float          # radial
    rib_gap: float                # pleura and intercostal muscle between lung and rib
    rib_height: float             # along z
    rib_pitch: float              # z distance between ribs at one point of the wall
    rib_phase: float
    rib_slope: float              # ribs run this much higher posteriorly than laterally (mm)
    body_wobble: tuple[tuple[float, float, float], ...]   # (order, amplitude, phase) of the outline
    lung_height: float            # lungs span z in [-lung_height / 2, lung_height / 2]
    apex_length: float            # the top part of the lungs that narrows to the apex
    upper_taper: float            # the chest is this much (fraction) narrower at the top than at the base
    lung_cx: float                # |x| of each lung's centre
    lung_cy: float
    lung_ax: float                # lung cross-section semi-axes (cut by wall and mediastinum)
    lung_ay: float
    dome_low: float               # z of the diaphragm at the lung rim (mid-AP)
    dome_right: float             # dome heights above dome_low (the right one rides on the liver)
    dome_left: float
    dome_tilt: float              # the posterior recess reaches this much lower
    mediastinum_y: tuple[float, ...]       # control points (y) ...
    mediastinum_half: tuple[float, ...]    # ... and half-widths of the mediastinum between lungs
    mediastinum_wave: tuple[float, float, float, float]  # width change, x shift (mm), wavelength (mm), phase
    heart_centre: tuple[float, float, float]
    heart_axes: tuple[float, float, float]  # (z, long in-plane, short in-plane)
    heart_angle: float            # in-plane angle of the long axis (radians)
    vertebra_r: float
    vertebra_cy: float
    canal_r: float
    disc_pitch: float
    disc_height: float
    disc_phase: float
    sternum_cy: float
    sternum_axes: tuple[float, float]      # (x, y) semi-axes
    sternum_z: tuple[float, float]
    table_y: float                # top of the table at x = 0 (posterior of the body)
    hila: tuple[tuple[float, float, float], tuple[float, float, float]]       # artery roots (right, left)
    vein_hila: tuple[tuple[float, float, float], tuple[float, float, float]]
    tubes: tuple[Tube, ...]       # mediastinal tubes, drawn in order


def _u(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def sample_anatomy(rng: np.random.Generator, fov_mm: float, config: SynthConfig) -> Anatomy:
    """Draw a thorax whose lateral width is ``config.body_fraction`` of the in-plane FOV (mm)."""
    body_a = 0.5 * fov_mm * _u(rng, config.body_fraction)
    body_b = body_a * _u(rng, config.body_ap_ratio)
    size = body_a / 165.0          # 1 for an average adult; scales wall and organ sizes
    fat = min(_u(rng, config.fat_thickness_mm) * (0.6 + 0.4 * size), 0.15 * body_b)
    rib_t = _u(rng, (6.0, 9.0)) * size
    rib_gap = _u(rng, (2.0, 4.0))
    cav_a = body_a - fat - _u(rng, (5.0, 10.0)) * size - rib_t - rib_gap
    y_ant = -body_b + fat + _u(rng, (10.0, 16.0)) * size
    y_post = body_b - fat - _u(rng, (30.0, 40.0)) * size
    cav_cy, cav_b = 0.5 * (y_ant + y_post), 0.5 * (y_post - y_ant)

    lung_h = _u(rng, config.lung_height_mm) * (0.8 + 0.2 * size)
    tilt = _u(rng, (12.0, 25.0))
    dome_low = -0.5 * lung_h + tilt
    dome_left = _u(rng, (45.0, 70.0))
    dome_right = dome_left + _u(rng, (8.0, 20.0))

    vb_r = _u(rng, (14.0, 18.0)) * size
    vb_cy = y_post - _u(rng, (1.1, 1.4)) * vb_r     # bulges into the cavity; lungs wrap around it
    canal_r = _u(rng, (6.0, 8.0)) * size
    eso_r = _u(rng, (6.0, 8.0)) * size
    trachea_r = _u(rng, (8.0, 10.5)) * size
    trachea_y = vb_cy - vb_r - 2.0 * eso_r - trachea_r - 2.0
    carina_z = _u(rng, (0.05, 0.18)) * lung_h
    mid_half = _u(rng, (26.0, 36.0)) * size
    med_y = (y_ant - 10.0, y_ant + 0.25 * cav_b, trachea_y, vb_cy - vb_r, vb_cy, y_post + 30.0)
    med_half = (_u(rng, (4.0, 12.0)) * size, mid_half * 0.8, mid_half, vb_r + 9.0, vb_r + 4.0,
                vb_r + 4.0)

    heart_long = _u(rng, (0.42, 0.52)) * cav_a
    heart_axes = (0.22 * lung_h, heart_long, heart_long * _u(rng, (0.65, 0.8)))
    heart_base = dome_low + 0.55 * dome_left
    heart_centre = (heart_base + 0.75 * heart_axes[0], cav_cy - _u(rng, (0.15, 0.3)) * cav_b,
                    _u(rng, (0.08, 0.2)) * cav_a)
    heart_top = heart_centre[0] + 0.8 * heart_axes[0]

    # Hila: where the main bronchi, pulmonary arteries and veins enter each lung.
    hila, vein_hila, bronchus_hila = [], [], []
    for side in (-1.0, 1.0):     # right (x < 0), left
        x = side * (mid_half + _u(rng, (4.0, 10.0)) * size)
        hila.append((carina_z - _u(rng, (5.0, 15.0)), trachea_y + _u(rng, (0.0, 10.0)), x))
        vein_hila.append((carina_z - _u(rng, (35.0, 50.0)), trachea_y + _u(rng, (10.0, 25.0)), x))
        bronchus_hila.append((carina_z - _u(rng, (10.0, 20.0)), trachea_y + _u(rng, (10.0, 18.0)), x))

    # Mediastinal tubes (z, y, x): esophagus, trachea, aorta (ascending, arch, descending), superior
    # vena cava, pulmonary trunk and arteries to the hila, pulmonary veins to the left atrium.
    top = 0.5 * lung_h + 60.0
    bottom = -0.5 * lung_h - 60.0
    aorta_r = _u(rng, (11.0, 15.0)) * size
    arch_z = carina_z + _u(rng, (20.0, 35.0))
    desc = (vb_cy - 0.6 * vb_r, vb_r + 0.5 * aorta_r)                 # (y, x) descending aorta
    asc = (trachea_y - _u(rng, (25.0, 35.0)) * size, -_u(rng, (5.0, 15.0)) * size)
    svc_r = _u(rng, (8.0, 11.0)) * size
    pt = (heart_top, cav_cy - 0.45 * cav_b, 0.3 * mid_half)           # pulmonary trunk origin
    bif = (carina_z - 15.0, trachea_y - 15.0, 0.3 * mid_half)
    atrium = (heart_centre[0] + 0.3 * heart_axes[0], heart_centre[1] + 0.5 * heart_axes[2], 0.0)
    tubes = [
        Tube((top, vb_cy - vb_r - eso_r - 1.0, 6.0), (bottom, vb_cy - vb_r - eso_r - 1.0, 6.0), eso_r,
             Tissue.MUSCLE),
        Tube((top, trachea_y, 0.0), (carina_z, trachea_y, 0.0), trachea_r + 2.0, Tissue.MUSCLE),
        Tube((heart_centre[0], asc[0], asc[1]), (arch_z, asc[0], asc[1]), aorta_r, Tissue.GREAT_VESSEL),
        Tube((arch_z, asc[0], asc[1]), (arch_z + 12.0, trachea_y, trachea_r + aorta_r + 2.0), aorta_r,
             Tissue.GREAT_VESSEL),
        Tube((arch_z + 12.0, trachea_y, trachea_r + aorta_r + 2.0), (arch_z, desc[0], desc[1]), aorta_r,
             Tissue.GREAT_VESSEL),
        Tube((arch_z, desc[0], desc[1]), (bottom, desc[0], desc[1] * 0.7), aorta_r, Tissue.GREAT_VESSEL),
        Tube((top, asc[0] + 8.0, asc[1] - aorta_r - svc_r), (heart_top, asc[0] + 8.0, asc[1] - aorta_r - svc_r),
             svc_r, Tissue.GREAT_VESSEL),
        Tube(pt, bif, 1.1 * aorta_r, Tissue.GREAT_VESSEL),
        Tube(bif, hila[0], 0.7 * aorta_r, Tissue.GREAT_VESSEL),
        Tube(bif, hila[1], 0.7 * aorta_r, Tissue.GREAT_VESSEL),
        Tube(vein_hila[0], atrium, 0.5 * aorta_r, Tissue.GREAT_VESSEL),
        Tube(vein_hila[1], atrium, 0.5 * aorta_r, Tissue.GREAT_VESSEL),
        # Airways last: the lumen cuts through whatever it crosses.
        Tube((top, trachea_y, 0.0), (carina_z, trachea_y, 0.0), trachea_r, Tissue.AIRWAY),
        Tube((carina_z, trachea_y, 0.0), bronchus_hila[0], 0.7 * trachea_r, Tissue.AIRWAY),
        Tube((carina_z, trachea_y, 0.0), bronchus_hila[1], 0.65 * trachea_r, Tissue.AIRWAY),
    ]
    sternum_axes = (_u(rng, (11.0, 15.0)) * size, _u(rng, (5.0, 7.0)) * size)
    return Anatomy(
        body_a=body_a, body_b=body_b, body_p=_u(rng, (2.0, 2.6)), fat=fat,
        body_wobble=tuple((float(k), _u(rng, (0.0, 0.025)), _u(rng, (0.0, 2 * np.pi))) for k in (2, 3, 4, 5)),
        cav_a=cav_a, cav_b=cav_b, cav_cy=cav_cy,
        rib_thickness=rib_t, rib_gap=rib_gap, rib_height=_u(rng, (7.0, 10.0)) * size,
        rib_pitch=_u(rng, (24.0, 30.0)) * size, rib_phase=_u(rng, (0.0, 30.0)),
        rib_slope=_u(rng, (50.0, 70.0)),
        lung_height=lung_h, apex_length=_u(rng, (0.2, 0.3)) * lung_h, upper_taper=_u(rng, (0.06, 0.16)),
        lung_cx=0.5 * cav_a, lung_cy=cav_cy + 0.05 * cav_b, lung_ax=0.62 * cav_a, lung_ay=1.15 * cav_b,
        dome_low=dome_low, dome_right=dome_right, dome_left=dome_left, dome_tilt=tilt,
        mediastinum_y=med_y, mediastinum_half=med_half,
        mediastinum_wave=(_u(rng, (0.05, 0.25)), _u(rng, (0.0, 6.0)), _u(rng, (120.0, 250.0)),
                          _u(rng, (0.0, 2 * np.pi))),
        heart_centre=heart_centre, heart_axes=heart_axes, heart_angle=_u(rng, (0.5, 0.9)),
        vertebra_r=vb_r, vertebra_cy=vb_cy, canal_r=canal_r,
        disc_pitch=_u(rng, (24.0, 30.0)) * size, disc_height=_u(rng, (5.0, 7.0)) * size,
        disc_phase=_u(rng, (0.0, 30.0)),
        sternum_cy=y_ant - sternum_axes[1] - 1.0, sternum_axes=sternum_axes,
        sternum_z=(-0.5 * lung_h + 0.3 * lung_h, 0.5 * lung_h - 0.12 * lung_h),
        table_y=body_b + _u(rng, (2.0, 12.0)),
        hila=(hila[0], hila[1]), vein_hila=(vein_hila[0], vein_hila[1]), tubes=tuple(tubes),
    )


def apex_scale(z: np.ndarray, anat: Anatomy) -> np.ndarray:
    """Relative width (0-1) of the lungs at height z: a spherical cap narrowing to 0 at the top of
    the lungs, times a gentle taper of the whole chest from the base upwards."""
    start = 0.5 * anat.lung_height - anat.apex_length
    rel = np.clip((z - start) / anat.apex_length, 0.0, 1.0)
    return np.sqrt(np.clip(1.0 - rel ** 2, 0.0, 1.0)) * taper_scale(z, anat)


def taper_scale(z: np.ndarray, anat: Anatomy) -> np.ndarray:
    """1 up to a quarter of the lung height, then narrowing linearly by ``upper_taper`` to the apex."""
    rel = np.clip((z + 0.25 * anat.lung_height) / (0.75 * anat.lung_height), 0.0, 1.0)
    return 1.0 - anat.upper_taper * rel


def tissue_map(grid: Grid, anat: Anatomy) -> np.ndarray:
    """Tissue labels (uint8, :class:`Tissue`) of the grid, shape (z, y, x)."""
    z3, y3, x3 = grid.coords()
    zs = z3[:, 0, 0]
    y2, x2 = y3[0], x3[0]                          # (Y, 1), (1, X)
    shape = grid.shape
    labels = np.zeros(shape, np.uint8)

    # In-plane (2D) layers: body outline, fat, muscle, cavity, rib ring; the cavity narrows at the apex.
    # The outline wobbles a little (low angular orders) so bodies are not perfect superellipses.
    angle = np.arctan2(y2, x2)
    wobble = 1.0 + sum(a * np.cos(k * angle + phase) for k, a, phase in anat.body_wobble)
    body = superellipse_radius(x2, y2, anat.body_a, anat.body_b, anat.body_p) < wobble
    inner = superellipse_radius(x2, y2, anat.body_a - anat.fat, anat.body_b - anat.fat, anat.body_p) < wobble
    rho_cav = superellipse_radius(x2, y2 - anat.cav_cy, anat.cav_a, anat.cav_b)
    rib_inner = anat.rib_gap
    rib_outer = anat.rib_gap + anat.rib_thickness
    rho_rib_in = superellipse_radius(x2, y2 - anat.cav_cy, anat.cav_a + rib_inner, anat.cav_b + rib_inner)
    rho_rib_out = superellipse_radius(x2, y2 - anat.cav_cy, anat.cav_a + rib_outer, anat.cav_b + rib_outer)
    cav_scale = (0.35 * taper_scale(zs, anat) + 0.65 * apex_scale(zs, anat)).astype(np.float32)[:, None, None]
    labels[:, body] = Tissue.FAT
    labels[:, inner] = Tissue.MUSCLE
    cavity = rho_cav[None] < cav_scale
    labels[cavity] = Tissue.MEDIASTINAL_FAT

    # Heart: rotated ellipsoid in epicardial fat (the fat shell is what is left of the outer one).
    hz, hy, hx = anat.heart_centre
    c, s = np.cos(anat.heart_angle), np.sin(anat.heart_angle)
    u, v = (x2 - hx) * c - (y2 - hy) * s, (x2 - hx) * s + (y2 - hy) * c
    heart_r2 = (u / anat.heart_axes[1]) ** 2 + (v / anat.heart_axes[2]) ** 2
    zr = ((zs - hz) / anat.heart_axes[0]) ** 2
    in_z = np.flatnonzero(zr < 1.0)
    if in_z.size:
        sl = slice(in_z[0], in_z[-1] + 1)
        heart = (heart_r2[None] + zr[sl, None, None]) < 0.85
        labels[sl][heart & cavity[sl]] = Tissue.HEART

    # Mediastinal tubes: esophagus, trachea wall, aorta, vena cava, pulmonary vessels, airways.
    for tube in anat.tubes:
        drawn = tube_occupancy(grid, tube.start, tube.end, tube.radius, tube.radius)
        if drawn is not None:
            box, occ = drawn
            sub = labels[box]
            sub[(occ > 0.5) & (sub != Tissue.FAT) & (sub != Tissue.AIR)] = tube.tissue

    # Diaphragm domes, one per side; below them liver (right) and stomach/spleen (left).
    tilt = anat.dome_tilt * -(y2 - anat.cav_cy) / anat.cav_b
    dome_floor = {}
    for side, height in ((-1.0, anat.dome_right), (1.0, anat.dome_left)):
        e = ((x2 - side * 0.45 * anat.cav_a) / (0.6 * anat.cav_a)) ** 2 + \
            ((y2 - anat.cav_cy + 0.1 * anat.cav_b) / anat.cav_b) ** 2
        dome_floor[side] = anat.dome_low + tilt + height * np.sqrt(np.clip(1.0 - e, 0.0, 1.0))
    floor = np.where(x2 < 0, dome_floor[-1.0], dome_floor[1.0]).astype(np.float32)   # (Y, X)
    below = (z3 < floor[None]) & cavity
    labels[below & (x3 < 0.15 * anat.cav_a)] = Tissue.LIVER
    labels[below & (x3 >= 0.15 * anat.cav_a)] = Tissue.ABDOMEN

    # Lungs: each an ellipse narrowing to the apex, cut by the wall, the mediastinum and the domes;
    # they only take space still filled with mediastinal fat (not heart, vessels, airways).
    # The mediastinum's width and midline drift slowly with height, so its edges are not straight.
    half = np.interp(y2[:, 0], anat.mediastinum_y, anat.mediastinum_half).astype(np.float32)
    widen, shift, wavelength, phase = anat.mediastinum_wave
    wave = np.sin(2 * np.pi * zs / wavelength + phase).astype(np.float32)
    outside_mediastinum = np.abs(x3 - (shift * wave)[:, None, None]) >= \
        half[None, :, None] * (1.0 + widen * wave)[:, None, None]
    apex2 = (apex_scale(zs, anat) ** 2).astype(np.float32)[:, None, None]
    free = labels == Tissue.MEDIASTINAL_FAT
    for side in (-1.0, 1.0):
        e = ((x2 - side * anat.lung_cx) / anat.lung_ax) ** 2 + ((y2 - anat.lung_cy) / anat.lung_ay) ** 2
        in_plane = (e < 1.0) & outside_mediastinum & ((x2 < 0) if side < 0 else (x2 >= 0))
        lung = (e[None] < apex2) & in_plane & (z3 > dome_floor[side][None]) & free
        labels[lung] = Tissue.LUNG

    _draw_bones(labels, grid, anat, rho_rib_in, rho_rib_out, cav_scale, inner)
    _draw_table(labels, grid, anat)
    return labels


def _draw_bones(labels: np.ndarray, grid: Grid, anat: Anatomy, rho_rib_in: np.ndarray,
                rho_rib_out: np.ndarray, cav_scale: np.ndarray, inner: np.ndarray) -> None:
    z3, y3, x3 = grid.coords()
    y2, x2 = y3[0], x3[0]
    zs = z3[:, 0, 0]

    # Ribs: a ring a few mm outside the cavity, cut into bands along z that climb posteriorly; an axial
    # slice shows their cross-sections as short arcs. Cortex where the band or ring edge is near.
    # Computed only on the pixels the ring covers at some height: (Z, n_pixels) instead of 3D.
    wall = ~((np.abs(x2) < anat.vertebra_r + 12.0) & (y2 > anat.cav_cy)) & \
           ~((np.abs(x2) < 1.6 * anat.sternum_axes[0]) & (y2 < anat.cav_cy))
    ring = (rho_rib_in >= cav_scale.min()) & (rho_rib_out < cav_scale.max()) & wall & inner
    rows, cols = np.nonzero(ring)
    if rows.size:
        rho_in, rho_out = rho_rib_in[rows, cols], rho_rib_out[rows, cols]
        k = rho_in / np.maximum(rho_out, 1e-6)                     # constant along each ray, > 1
        radial = (rho_in[None] / cav_scale[:, :, 0] - 1.0) / (k[None] - 1.0)   # 0 inner edge, 1 outer
        theta = np.arctan2(y2[rows, 0] - anat.cav_cy, np.abs(x2[0, cols]))   # +pi/2 posterior
        climb = anat.rib_slope * theta * (2.0 / np.pi)              # steady descent: short arcs all round
        phase = np.mod(zs[:, None] - climb[None] - anat.rib_phase, anat.rib_pitch) / anat.rib_height
        rib = (radial >= 0.0) & (radial < 1.0) & (phase < 1.0)
        cortex = ((2.0 * radial - 1.0) ** 2 + (2.0 * phase - 1.0) ** 2) > 0.45
        values = labels[:, rows, cols]
        values[rib & cortex] = Tissue.BONE_CORTEX
        values[rib & ~cortex] = Tissue.BONE_MARROW
        labels[:, rows, cols] = values

    # Vertebral column: body with cortical rim and discs, canal, lamina, spinous and transverse
    # processes (posterior elements constant along z, a simplification).
    r_vb = np.sqrt(x2 ** 2 + (y2 - anat.vertebra_cy) ** 2) / anat.vertebra_r
    canal_cy = anat.vertebra_cy + anat.vertebra_r + anat.canal_r + 1.0
    r_canal = np.sqrt(x2 ** 2 + (y2 - canal_cy) ** 2)
    lamina = (r_canal < anat.canal_r + 4.0) & (y2 > canal_cy - 2.0)
    spinous = ((x2 / 4.5) ** 2 + ((y2 - canal_cy - anat.canal_r - 9.0) / 11.0) ** 2) < 1.0
    transverse = (((np.abs(x2) - anat.canal_r - 16.0) / 13.0) ** 2 + ((y2 - canal_cy + 2.0) / 5.0) ** 2) < 1.0
    posterior = (lamina | spinous | transverse) & (r_canal >= anat.canal_r)
    labels[:, posterior & inner] = Tissue.BONE_CORTEX
    labels[:, (r_canal < anat.canal_r)] = Tissue.MUSCLE
    labels[:, (r_vb < 1.0) & (r_vb >= 0.82)] = Tissue.BONE_CORTEX
    labels[:, r_vb < 0.82] = Tissue.BONE_MARROW
    discs = np.flatnonzero(np.mod(zs - anat.disc_phase, anat.disc_pitch) < anat.disc_height)
    if discs.size:
        block = labels[discs]
        block[:, r_vb < 1.0] = Tissue.DISC
        labels[discs] = block

    # Sternum: flat ellipse in the anterior wall over the middle of the chest.
    r_st = np.sqrt((x2 / anat.sternum_axes[0]) ** 2 + ((y2 - anat.sternum_cy) / anat.sternum_axes[1]) ** 2)
    rows = np.flatnonzero((zs > anat.sternum_z[0]) & (zs < anat.sternum_z[1]))
    if rows.size:
        block = labels[rows]
        block[:, (r_st < 1.0) & (r_st >= 0.6)] = Tissue.BONE_CORTEX
        block[:, r_st < 0.6] = Tissue.BONE_MARROW
        labels[rows] = block


def _draw_table(labels: np.ndarray, grid: Grid, anat: Anatomy) -> None:
    """The patient table: a curved carbon-fibre shell with a foam core, below (posterior to) the body."""
    _, y3, x3 = grid.coords()
    y2, x2 = y3[0], x3[0]
    half_width = 0.8 * anat.body_a + 40.0
    top = anat.table_y - 18.0 * (x2 / half_width) ** 2
    depth = y2 - top
    # Shells at least a voxel thick, else they alias into dashes.
    shell = max(2.0, 1.1 * grid.spacing[1])
    thickness = 10.0 + 2.0 * shell
    inside = (np.abs(x2) < half_width) & (depth >= 0.0) & (depth < thickness)
    labels[:, inside & ((depth < shell) | (depth >= thickness - shell))] = Tissue.TABLE_SHELL
    labels[:, inside & (depth >= shell) & (depth < thickness - shell)] = Tissue.TABLE_CORE

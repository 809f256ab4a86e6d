"""Pulmonary vessel and bronchus trees: the tumour-like distractors inside the lungs.

Each lung gets arterial and venous trees grown from its hilum, one per primary branch aimed at a
random point of the lung (so apex and bases get vessels too). A branch is a tapered tube; it splits
into a major child (slightly thinner, slightly deflected) and a minor child (radius from Murray's
law r^3 = r1^3 + r2^3, deflected more), each 65-85 % as long, with a bias away from the hilum so the
tree fans out towards the pleura. A branch whose end would leave the lung is turned or shortened,
else dropped; branches stop below ``r_min``. The first generations of the arterial trees have a
bronchus alongside (air lumen, soft-tissue wall), as in bronchovascular bundles.

Unenhanced blood is 35-50 HU, the same as tumours, so round vessel cross-sections look like small
nodules in a single slice; only their continuity along z gives them away.

Growth uses plain Python floats for its 3-vectors: numpy's per-call overhead on 3-element arrays
was most of the generator's time.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nnunet_ts.synth.anatomy import Anatomy
from nnunet_ts.synth.grid import Grid, draw_tube

Vec = tuple[float, float, float]   # patient frame mm (z, y, x)

MAX_BRANCHES_PER_TREE = 400
N_ARTERY_PRIMARIES = 7             # per hilum; arteries carry the bronchi
N_VEIN_PRIMARIES = 6


@dataclass(frozen=True)
class Branch:
    start: Vec
    end: Vec
    r_start: float
    r_end: float
    generation: int


@dataclass(frozen=True)
class Trees:
    vessels: list[Branch]
    bronchi: list[tuple[Branch, float]]     # lumen branch and wall thickness (mm)


def _add(a: Vec, b: Vec, scale: float = 1.0) -> Vec:
    return a[0] + scale * b[0], a[1] + scale * b[1], a[2] + scale * b[2]


def _unit(v: Vec) -> Vec:
    n = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]) or 1e-9
    return v[0] / n, v[1] / n, v[2] / n


def _cross(a: Vec, b: Vec) -> Vec:
    return a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]


def _deflect(d: Vec, angle: float, roll: float) -> Vec:
    """Unit ``d`` turned by ``angle`` (radians) towards the perpendicular at angle ``roll`` about it."""
    helper = (1.0, 0.0, 0.0) if abs(d[0]) < 0.9 else (0.0, 1.0, 0.0)
    e1 = _unit(_cross(d, helper))
    e2 = _cross(d, e1)
    cr, sr = math.cos(roll), math.sin(roll)
    perp = (cr * e1[0] + sr * e2[0], cr * e1[1] + sr * e2[1], cr * e1[2] + sr * e2[2])
    c, s = math.cos(angle), math.sin(angle)
    return _unit((c * d[0] + s * perp[0], c * d[1] + s * perp[1], c * d[2] + s * perp[2]))


def grow_tree(rng: np.random.Generator, root: Vec, direction: Vec, radius: float, length: float,
              r_min: float, inside: Callable[[Vec], bool]) -> list[Branch]:
    """Branches of one tree from ``root`` (mm) along ``direction``.

    Args:
        radius, length: of the first branch (mm); children are 65-85 % as long.
        r_min: branches thinner than this (mm) are not grown.
        inside: whether a point (mm) is in the lung; the first branch may start outside (the hilum
            lies in the mediastinum).
    """
    two_pi = 2.0 * math.pi
    branches: list[Branch] = []
    stack = [(root, _unit(direction), float(radius), float(length), 0)]
    while stack and len(branches) < MAX_BRANCHES_PER_TREE:
        start, d, r, length, generation = stack.pop()
        u = rng.random(10).tolist()    # one draw per branch: small numpy calls dominate otherwise
        end = None
        for attempt in range(4):
            trial = d if attempt == 0 else _deflect(d, 0.4 * attempt, two_pi * u[attempt - 1])
            candidate = _add(start, trial, length)
            if inside(candidate):
                end, d = candidate, trial
                break
            length *= 0.7
        if end is None:
            continue
        r_end = 0.92 * r
        branches.append(Branch(start, end, r, r_end, generation))
        outward = _unit(_add(end, root, -1.0))
        r_major = r_end * (0.8 + 0.12 * u[3])
        r_minor = (r_end ** 3 - r_major ** 3) ** (1.0 / 3.0)
        children = ((r_major, 0.1 + 0.3 * u[4], u[5], u[6]), (r_minor, 0.5 + 0.6 * u[7], u[8], u[9]))
        for r_child, angle, roll, shrink in children:
            if r_child >= r_min and length > 3.0:
                child = _unit(_add(_deflect(d, angle, two_pi * roll), outward, 0.3))
                stack.append((end, child, r_child, length * (0.65 + 0.2 * shrink), generation + 1))
    return branches


def _lung_point(rng: np.random.Generator, grid: Grid, lung_voxels: np.ndarray, side: float) -> Vec | None:
    """A random lung voxel (mm) on one side (sign of x); None if none is found."""
    for flat in rng.choice(lung_voxels, 50):
        point = grid.position_of(np.unravel_index(flat, grid.shape))
        if point[2] * side > 0:
            return tuple(point.tolist())
    return None


def grow_lung_trees(rng: np.random.Generator, grid: Grid, anat: Anatomy, lungs: np.ndarray) -> Trees:
    """Vessel and bronchus branches of both lungs; ``lungs`` is the lung field (bool, grid shape)."""
    (cz, cy, cx), (sz, sy, sx), (nz, ny, nx) = grid.corner, grid.spacing, grid.shape

    def inside(p: Vec) -> bool:
        iz, iy, ix = round((p[0] - cz) / sz), round((p[1] - cy) / sy), round((p[2] - cx) / sx)
        return 0 <= iz < nz and 0 <= iy < ny and 0 <= ix < nx and bool(lungs[iz, iy, ix])

    r_min = max(0.6, 0.25 * sx)
    lung_voxels = np.flatnonzero(lungs)
    if lung_voxels.size == 0:
        return Trees([], [])
    vessels: list[Branch] = []
    bronchi: list[tuple[Branch, float]] = []
    for side_index, side in enumerate((-1.0, 1.0)):
        for roots, n_primaries, is_artery in ((anat.hila, N_ARTERY_PRIMARIES, True),
                                              (anat.vein_hila, N_VEIN_PRIMARIES, False)):
            root = tuple(float(c) for c in roots[side_index])
            # The bronchus runs on one fixed side of its artery within a tree.
            reference = tuple(rng.standard_normal(3).tolist())
            for _ in range(n_primaries):
                target = _lung_point(rng, grid, lung_voxels, side)
                if target is None:
                    break
                towards = _add(target, root, -1.0)
                distance = math.sqrt(sum(c * c for c in towards))
                tree = grow_tree(rng, root, towards, float(rng.uniform(3.5, 5.0)),
                                 min(max(0.35 * distance, 12.0), 50.0), r_min, inside)
                vessels.extend(tree)
                if is_artery:
                    bronchi.extend(_bronchi_along(tree, reference))
    return Trees(vessels, bronchi)


def _bronchi_along(tree: list[Branch], reference: Vec) -> list[tuple[Branch, float]]:
    """Bronchi beside the first generations of an arterial tree: lumen about the artery's radius."""
    out = []
    for b in tree:
        if b.generation > 3 or b.r_start < 1.5:
            continue
        wall = max(0.15 * b.r_start, 0.8)
        offset = _unit(_cross(_add(b.end, b.start, -1.0), reference))
        shift = 2.0 * b.r_start + wall + 0.5
        out.append((Branch(_add(b.start, offset, shift), _add(b.end, offset, shift), 0.9 * b.r_start,
                           0.9 * b.r_end, b.generation), wall))
    return out


def render_trees(hu: np.ndarray, grid: Grid, trees: Trees, lungs: np.ndarray, vessel_hu: float,
                 wall_hu: float) -> None:
    """Blend vessels (``vessel_hu``) and bronchi (wall ``wall_hu``, air lumen) into ``hu`` in place,
    inside the lung field only."""
    vessel = np.zeros(grid.shape, np.float32)
    for b in trees.vessels:
        draw_tube(vessel, grid, b.start, b.end, b.r_start, b.r_end)
    wall = np.zeros(grid.shape, np.float32)
    lumen = np.zeros(grid.shape, np.float32)
    for b, thickness in trees.bronchi:
        draw_tube(wall, grid, b.start, b.end, b.r_start + thickness, b.r_end + thickness)
        draw_tube(lumen, grid, b.start, b.end, b.r_start, b.r_end)
    lungs_f = lungs.astype(np.float32)
    for occ, value in ((vessel, vessel_hu), (wall, wall_hu), (lumen, -1000.0)):
        occ *= lungs_f
        hu += occ * (value - hu)

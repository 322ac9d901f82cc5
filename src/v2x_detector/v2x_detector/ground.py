"""A ground-plane calibration: image points (0..1 of the frame) to metres on the road.

A site gives four points it can find in the image and on the road (lane-marking ends,
kerb corners, the foot of two poles): ``ground_points`` = u1, v1, x1, y1, ... u4, v4, x4,
y4, with (u, v) in 0..1 of the frame (u to the right, v down, as lane_polygon) and (x, y)
in metres in the site's own ground frame (any origin and axes, e.g. measured with a tape
or read off a map). The road is taken as a plane, so the four pairs fix a homography
(the direct linear transform, solved exactly). Pure numpy: no model, no I/O.

With it the rules measure a vehicle's speed as its foot point (the bottom centre of its
box) moving on the road, in m/s: the same for a car near the camera and one far away,
where box diagonals per second mean different things (docs/detector.md).
"""

import math

import numpy as np

#: values in ground_points: four (u, v, x, y)
VALUES = 16


def problems(points: tuple[float, ...]) -> list[str]:
    """What makes ground_points unusable (empty: fine, or no calibration given)."""
    if not points:
        return []
    if len(points) != VALUES:
        return [f'needs 4 points of u, v, x, y (16 values), got {len(points)}']
    if not all(math.isfinite(v) for v in points):
        return ['every value must be a finite number']
    image, _ = _pairs(points)
    if any(not (0.0 <= c <= 1.0) for p in image for c in p):
        return ['u and v are fractions of the frame, 0..1']
    try:
        homography(points)
    except ValueError as exc:
        return [str(exc)]
    return []


def _pairs(points: tuple[float, ...]) -> tuple[list, list]:
    """The four (u, v) image points and the four (x, y) ground points."""
    return ([(points[i], points[i + 1]) for i in range(0, VALUES, 4)],
            [(points[i + 2], points[i + 3]) for i in range(0, VALUES, 4)])


def _collinear(a, b, c) -> bool:
    return abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])) < 1e-9


def homography(points: tuple[float, ...]) -> np.ndarray:
    """The 3x3 matrix taking (u, v, 1) to (x, y, 1) up to scale; ValueError when the points
    cannot fix one (three of them in a line, in the image or on the ground)."""
    image, ground = _pairs(points)
    for pts, where in ((image, 'in the image'), (ground, 'on the ground')):
        for i in range(4):
            others = [pts[j] for j in range(4) if j != i]
            if _collinear(*others):
                raise ValueError(f'three of the four points lie in a line {where}: '
                                 'they cannot fix the road plane')
    rows, rhs = [], []
    for (u, v), (x, y) in zip(image, ground, strict=True):
        rows.append([u, v, 1.0, 0.0, 0.0, 0.0, -u * x, -v * x])
        rhs.append(x)
        rows.append([0.0, 0.0, 0.0, u, v, 1.0, -u * y, -v * y])
        rhs.append(y)
    try:
        h = np.linalg.solve(np.array(rows), np.array(rhs))
    except np.linalg.LinAlgError:
        raise ValueError('the points cannot fix the road plane (singular)') from None
    return np.append(h, 1.0).reshape(3, 3)


class Ground:
    """Image points in 0..1 of the frame to metres on the road plane."""

    def __init__(self, points: tuple[float, ...]):
        self.h = homography(points)
        # the side of the horizon the calibration points are on (the road's side)
        image, _ = _pairs(points)
        cu, cv = sum(u for u, _ in image) / 4, sum(v for _, v in image) / 4
        self._side = 1.0 if (self.h @ (cu, cv, 1.0))[2] > 0 else -1.0

    def to_ground(self, u: float, v: float) -> tuple[float, float] | None:
        """(x, y) in metres, or None where the point is on or beyond the horizon (the
        road's image ends there: nothing up there stands on the road)."""
        x, y, w = self.h @ (u, v, 1.0)
        if w * self._side <= 1e-9:
            return None
        return (float(x / w), float(y / w))

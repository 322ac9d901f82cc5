"""What a detector backend hands to the hazard rules: boxes, classes, track ids (pure)."""

from dataclasses import dataclass


class BackendError(RuntimeError):
    """A model or backend that cannot be used as configured (message starts with the parameter)."""


Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the original frame


@dataclass(frozen=True)
class Detection:
    """One object found in one frame."""

    box: Box
    cls: int
    name: str
    conf: float


@dataclass(frozen=True)
class Track:
    """A detection with the id of the object it follows across frames."""

    track_id: int
    box: Box
    cls: int
    name: str
    conf: float


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def area(b: Box) -> float:
    """Area of a box (0 for a degenerate one)."""
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def gap(a: Box, b: Box) -> float:
    """Distance in pixels between the edges of two boxes; 0 when they touch or overlap."""
    dx = max(0.0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0.0, max(a[1], b[1]) - min(a[3], b[3]))
    return (dx * dx + dy * dy) ** 0.5


def center(b: Box) -> tuple[float, float]:
    """Centre of a box."""
    return (b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0


def diag(b: Box) -> float:
    """Length of a box's diagonal (its size scale)."""
    return ((b[2] - b[0]) ** 2 + (b[3] - b[1]) ** 2) ** 0.5


def union_box(boxes) -> Box:
    """The smallest box holding all given boxes."""
    boxes = list(boxes)
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))

"""Camera health: frames in, a verdict out (pure: numpy and cv2, no rclpy).

An RSU whose camera is frozen, dark, washed out, blurred, covered, turned away or silent
cannot warn anyone. :class:`CameraHealth` judges each decoded frame on a small grey copy
(``width`` x 9/16 of it, or as many pixels in another shape; its cost per frame is measured
by bench/bench_camera_health.py) and says which of these holds:

- ``silent``: no frame for ``silent_s`` (the caller's clock, e.g. time.monotonic()).
- ``frozen``: consecutive frames identical (mean absolute difference under
  ``frozen_diff`` grey levels) for ``frozen_s`` of frame time.
- ``dark``: the 95th percentile of grey under ``dark_level`` (black frames, a lens cap, a
  dead illuminator at night; a night street with lamps and headlights is not dark).
- ``washed_out``: the 5th percentile over ``bright_level`` (glare, a saturated sensor).
- ``covered``: almost no contrast (standard deviation under ``flat_contrast``) without being
  dark or washed out: something flat in front of the lens (paper, a sticker, a wet film).
- ``blurred``: sharpness (mean absolute Laplacian) under ``blur_ratio`` of the reference's.
- ``moved``: the view no longer matches the reference: the gradient images are shifted by
  more than ``moved_shift`` of the width, or their correlation (smoothed over
  ``moved_smooth_s``, so that a truck filling the view for a moment does not count) is under
  ``moved_match`` (turned away), or the view keeps moving: the median shift from one
  comparison to the next (``compare_s`` apart, over ``shake_window`` of them) is over
  ``moved_shake`` of the width (a hand-held camera, a swaying pole); reported after
  ``moved_hold_s``, not ``hold_s``.

The reference (average of the frames of the first ``reference_s`` of frame time) is taken
at start and again on :meth:`CameraHealth.retake_reference` (an operator action: the
camera was re-aimed on purpose). It is never re-taken on its own: a slow drift would then
be absorbed. A condition is reported once it has held for ``hold_s`` of frame time and
cleared once it has been absent that long, so single odd frames (a flash, a bus filling
the view) do not flap the verdict. Several at once: the first of REASONS wins.
"""

from dataclasses import dataclass
import math

import cv2
import numpy as np

SILENT, FROZEN, DARK, WASHED_OUT, COVERED, BLURRED, MOVED = (
    'silent', 'frozen', 'dark', 'washed_out', 'covered', 'blurred', 'moved')
#: every reason, the most telling first (a black frame is also flat, unsharp and often
#: repeated exactly: dark)
REASONS = (SILENT, DARK, WASHED_OUT, COVERED, FROZEN, BLURRED, MOVED)


@dataclass(frozen=True)
class HealthConfig:
    """Thresholds of the checks (grey levels 0..255; times in seconds)."""

    width: int = 160
    silent_s: float = 5.0
    frozen_s: float = 5.0
    frozen_diff: float = 0.2
    dark_level: float = 30.0
    bright_level: float = 225.0
    flat_contrast: float = 4.0
    blur_ratio: float = 0.35
    moved_shift: float = 0.04
    moved_match: float = 0.3
    moved_smooth_s: float = 2.0
    compare_s: float = 0.1  # the view is compared with the reference at most this often
    moved_shake: float = 0.01
    shake_window: int = 20  # comparisons the shake is the median of (2 s at compare_s)
    hold_s: float = 3.0
    moved_hold_s: float = 10.0
    reference_s: float = 2.0

    def problems(self) -> list[tuple[str, str]]:
        """(name, reason) of each bad value."""
        out = []
        if not 32 <= self.width <= 1024:
            out.append(('width', f'{self.width}: must lie in 32..1024'))
        for name in ('silent_s', 'frozen_s', 'hold_s', 'moved_hold_s', 'moved_smooth_s',
                     'reference_s'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                out.append((name, f'{value}: must be a positive number of seconds'))
        return out


@dataclass(frozen=True)
class Verdict:
    """What the camera shows now: reason '' when it can see, else one of REASONS."""

    reason: str
    detail: str

    @property
    def ok(self) -> bool:
        return not self.reason


SEES = Verdict('', 'camera sees')


@dataclass(frozen=True)
class Measures:
    """One frame's figures (what the checks read; shown in diagnostics)."""

    change: float       # mean |this - previous| (grey levels)
    dark: float         # 95th percentile
    bright: float       # 5th percentile
    contrast: float     # standard deviation
    sharpness: float    # sharpness / the reference's (1.0 before a reference exists)
    shift: float        # view shift against the reference, fraction of the width
    match: float        # gradient correlation with the reference (1.0 before a reference)
    shake: float        # median shift between comparisons, fraction of the width


def grey_small(image: np.ndarray, width: int) -> np.ndarray:
    """A uint8 grey copy of a BGR (or grey) frame of about width x (width * 9 / 16) pixels
    (a portrait frame is as many pixels, narrower): the mean of k x k blocks, k whole (the
    fast path of cv2's area resize; the last rows and columns short of a block are left)."""
    h, w = image.shape[:2]
    k = max(1, round(math.sqrt(w * h / (width * width * 9 / 16))))
    if h // k < 8 or w // k < 8:
        k = max(1, min(h, w) // 8)
    small = cv2.resize(image[:h // k * k, :w // k * k], (w // k, h // k),
                       interpolation=cv2.INTER_AREA)
    if small.ndim == 3:
        small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    return small


def _percentiles(grey: np.ndarray) -> tuple[float, float]:
    """(5th, 95th) percentile of a uint8 image, from its histogram."""
    cumulative = np.cumsum(cv2.calcHist([grey], [0], None, [256], [0, 256]).ravel())
    n = cumulative[-1]
    return (float(np.searchsorted(cumulative, 0.05 * n)),
            float(np.searchsorted(cumulative, 0.95 * n)))


def _sharpness(grey: np.ndarray) -> float:
    return float(np.mean(np.abs(cv2.Laplacian(grey, cv2.CV_32F))))


def _gradient(grey: np.ndarray) -> np.ndarray:
    blurred = cv2.GaussianBlur(grey, (3, 3), 0)
    gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1)
    return cv2.magnitude(gx, gy)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(np.sum(a * a)) * float(np.sum(b * b)))
    return float(np.sum(a * b)) / den if den > 0 else 0.0


class _Reference:
    """The view the camera is supposed to show."""

    def __init__(self, grey: np.ndarray, sharpness: float):
        self.gradient = _gradient(grey)
        self.sharpness = max(sharpness, 1e-3)
        self.window = cv2.createHanningWindow(grey.shape[::-1], cv2.CV_32F)
        self.windowed = self.gradient * self.window


class CameraHealth:
    """Frames in (:meth:`observe`), a :class:`Verdict` out (:meth:`verdict`).

    ``now`` is the caller's clock for silence (monotonic seconds); ``t`` a frame's own time
    for everything else, so a file read at full speed is judged as if played live.
    Not thread-safe but for :meth:`retake_reference` and :meth:`verdict`, which only read or
    set single attributes (the node calls observe on its worker thread).
    """

    def __init__(self, config: HealthConfig = HealthConfig(), now: float = 0.0):
        self.config = config
        self.last_frame_at = now  # the caller's clock
        self.frames = 0
        self.measures: Measures | None = None
        self._previous: np.ndarray | None = None
        self._reference: _Reference | None = None
        self._collect: list[np.ndarray] = []  # frames of the reference being taken
        self._collect_from: float | None = None
        self._retake = False
        self._compared: tuple[float, float, float] | None = None  # (t, shift, match)
        self._last_windowed: np.ndarray | None = None  # the last compared gradient, windowed
        self._shakes: list[float] = []  # shifts from one comparison to the next
        self._since: dict[str, float] = {}  # reason -> frame time it was first seen
        self._absent: dict[str, float] = {}  # reported reason -> frame time it went away
        self._reported: tuple[str, ...] = ()
        self._unchanged_since: float | None = None
        self._match = 1.0  # smoothed gradient correlation with the reference
        self._last_t: float | None = None

    # --- input ---------------------------------------------------------------------------
    def retake_reference(self) -> None:
        """Take the reference again from the next frames (the operator re-aimed the camera)."""
        self._retake = True

    @property
    def has_reference(self) -> bool:
        return self._reference is not None

    def observe(self, image: np.ndarray, t: float, now: float) -> Verdict:
        """Judge one decoded frame (frame time t, caller's clock now); the verdict after it."""
        c = self.config
        self.last_frame_at = now
        self.frames += 1
        small = grey_small(image, c.width)
        grey = small.astype(np.float32)
        if self._previous is not None and self._previous.shape != grey.shape:
            self._previous = None
            self._reference, self._collect, self._collect_from = None, [], None
        change = (float(np.mean(np.abs(grey - self._previous)))
                  if self._previous is not None else math.inf)
        self._previous = grey
        if change < c.frozen_diff:
            if self._unchanged_since is None:
                self._unchanged_since = t
        else:
            self._unchanged_since = None
        low, high = _percentiles(small)
        contrast = float(grey.std())
        sharpness = _sharpness(grey)
        ratio, shift, match = self._against_reference(grey, sharpness, t)
        dt = max(t - self._last_t, 0.0) if self._last_t is not None else 0.0
        self._last_t = t
        if not self.has_reference:
            self._match = 1.0
        else:
            self._match += (match - self._match) * (1.0 - math.exp(-dt / c.moved_smooth_s))
        shake = (float(np.median(self._shakes)) if len(self._shakes) >= c.shake_window // 2
                 else 0.0)
        self.measures = Measures(change, float(high), float(low), contrast, ratio, shift,
                                 self._match, shake)
        seen = []
        if self._unchanged_since is not None and t - self._unchanged_since >= c.frozen_s:
            seen.append(FROZEN)
        if high < c.dark_level:
            seen.append(DARK)
        elif low > c.bright_level:
            seen.append(WASHED_OUT)
        elif contrast < c.flat_contrast:
            seen.append(COVERED)
        elif ratio < c.blur_ratio:
            seen.append(BLURRED)
        elif shift > c.moved_shift or self._match < c.moved_match or shake > c.moved_shake:
            seen.append(MOVED)
        self._debounce(seen, t)
        return self.verdict(now)

    def _against_reference(self, grey: np.ndarray, sharpness: float,
                           t: float) -> tuple[float, float, float]:
        """(sharpness ratio, shift, match) against the reference; takes it when due."""
        c = self.config
        if self._retake or (self._reference is None and self._collect_from is None):
            self._retake = False
            self._reference, self._collect, self._collect_from = None, [], t
            self._compared, self._last_windowed, self._shakes = None, None, []
        if self._reference is None:
            self._collect.append(grey)
            if t - self._collect_from >= c.reference_s or len(self._collect) >= 250:
                mean = np.mean(self._collect, axis=0).astype(np.float32)
                sharp = float(np.median([_sharpness(g) for g in self._collect]))
                self._reference, self._collect = _Reference(mean, sharp), []
            return 1.0, 0.0, 1.0
        ref = self._reference
        if self._compared is None or not 0 <= t - self._compared[0] < c.compare_s:
            gradient = _gradient(grey)
            windowed = gradient * ref.window
            # (phaseCorrelate applies the window to its inputs in place: it gets copies)
            (dx, dy), _ = cv2.phaseCorrelate(ref.windowed.copy(), windowed.copy())
            if self._last_windowed is not None:
                (mx, my), _ = cv2.phaseCorrelate(self._last_windowed, windowed.copy())
                self._shakes.append(math.hypot(mx, my) / grey.shape[1])
                del self._shakes[:-c.shake_window]
            self._last_windowed = windowed
            self._compared = (t, math.hypot(dx, dy) / grey.shape[1],
                              _correlation(ref.gradient, gradient))
        return sharpness / ref.sharpness, self._compared[1], self._compared[2]

    def _debounce(self, seen: list[str], t: float) -> None:
        for reason in list(self._since):
            if reason not in seen:
                del self._since[reason]
        for reason in seen:
            self._since.setdefault(reason, t)
            self._absent.pop(reason, None)
        reported = []
        for reason in REASONS:
            hold = self.config.moved_hold_s if reason == MOVED else self.config.hold_s
            if reason in self._since and t - self._since[reason] >= hold:
                reported.append(reason)
            elif reason in self._reported:
                gone = self._absent.setdefault(reason, t)
                if t - gone < hold:
                    reported.append(reason)
                else:
                    del self._absent[reason]
        self._reported = tuple(reported)

    # --- output --------------------------------------------------------------------------
    def verdict(self, now: float) -> Verdict:
        """The camera's state at now (caller's clock): silent, or the last frame's verdict."""
        c = self.config
        idle = now - self.last_frame_at
        if idle >= c.silent_s:
            what = 'no frame yet' if not self.frames else 'no frame'
            return Verdict(SILENT, f'{what} for {idle:.0f} s')
        if not self._reported:
            return SEES
        reason = self._reported[0]
        return Verdict(reason, self._detail(reason))

    def _detail(self, reason: str) -> str:
        m, c = self.measures, self.config
        if m is None:
            return reason
        return {
            FROZEN: f'identical frames for over {c.frozen_s:g} s',
            DARK: f'95% of the picture under grey {m.dark:.0f} (limit {c.dark_level:g})',
            WASHED_OUT: f'95% of the picture over grey {m.bright:.0f} '
                        f'(limit {c.bright_level:g})',
            COVERED: f'no contrast (std {m.contrast:.1f}, limit {c.flat_contrast:g})',
            BLURRED: f'sharpness {m.sharpness:.0%} of the reference '
                     f'(limit {c.blur_ratio:.0%})',
            MOVED: f'view shifted {m.shift:.0%} of the width, match {m.match:.2f} with the '
                   f'reference, moving {m.shake:.1%} of the width per {c.compare_s:g} s '
                   f'(limits {c.moved_shift:.0%}, {c.moved_match:g}, {c.moved_shake:.0%})',
        }.get(reason, reason)

    def values(self) -> dict:
        """Figures for diagnostics."""
        m = self.measures
        out = {'camera_frames': self.frames, 'camera_reference': self.has_reference}
        if m is not None:
            out.update(camera_change=m.change, camera_p95=m.dark, camera_p5=m.bright,
                       camera_contrast=m.contrast, camera_sharpness=m.sharpness,
                       camera_shift=m.shift, camera_match=m.match, camera_shake=m.shake)
        return out

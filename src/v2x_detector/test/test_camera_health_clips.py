"""camera_health on a real road clip (dev set) altered with ffmpeg filters: boxblur, black
frames, a frozen frame, a crop shift; the clip itself reads healthy. The clips are read
from ../shared/eval at run time (never committed); the tests skip where it is absent."""

from pathlib import Path
import subprocess

import cv2
import pytest

from v2x_detector.camera_health import (
    BLURRED,
    DARK,
    FROZEN,
    MOVED,
    CameraHealth,
    HealthConfig,
)

WS = Path(__file__).resolve().parents[3]
CLIP = WS.parent / 'shared' / 'eval' / 'dev' / 'col_03_arterial_two_cars_wreck_in.mp4'
FPS = 10  # frame time is what counts: 10 frames/s keep the test short
AT = 3.0  # the alteration starts here (s); the reference is taken before it
#: the defaults but moved_hold_s (10 s would need a longer clip)
CONFIG = HealthConfig(moved_hold_s=4.0)
#: name -> (ffmpeg video filter after fps, the reason it must read as)
FILTERS = {
    'as_is': ('null', ''),
    'boxblur': (f"boxblur=luma_radius=10:chroma_radius=10:enable='gte(t,{AT})'", BLURRED),
    'black': (f"drawbox=color=black:t=fill:enable='gte(t,{AT})'", DARK),
    'frozen': (f'loop=loop=200:size=1:start={int(AT * FPS)},setpts=N/{FPS}/TB', FROZEN),
    'crop_shift': (f"crop=w=iw-96:h=ih:x='if(gte(t,{AT}),96,0)':y=0", MOVED),
}

pytestmark = pytest.mark.skipif(not CLIP.is_file(), reason=f'{CLIP} is absent (the dev set '
                                'lives in ../shared/eval beside the clone)')


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    """The first 13 s of col_03 (traffic before the crash) through each filter (ffmpeg, in
    parallel)."""
    out = tmp_path_factory.mktemp('altered')
    procs = {}
    for name, (vf, _) in FILTERS.items():
        path = out / f'{name}.mp4'
        procs[name] = (path, subprocess.Popen(
            ['ffmpeg', '-nostdin', '-loglevel', 'error', '-i', str(CLIP), '-t', '13',
             '-vf', f'fps={FPS},{vf}', '-frames:v', str(13 * FPS), '-an', '-c:v', 'libx264',
             '-preset', 'ultrafast', '-crf', '23', str(path)], stderr=subprocess.PIPE))
    for name, (_, proc) in procs.items():
        assert proc.wait(60) == 0, (name, proc.stderr.read())
    return {name: path for name, (path, _) in procs.items()}


def _verdicts(path):
    cap = cv2.VideoCapture(str(path))
    health = CameraHealth(CONFIG)
    out = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        t = len(out) / FPS
        out.append((t, health.observe(frame, t, t).reason))
    cap.release()
    return out


@pytest.mark.parametrize('name', sorted(FILTERS))
def test_an_altered_real_clip_reads_as_its_fault(clips, name):
    """Healthy before the alteration; the alteration's reason at the end (after its hold);
    the unaltered clip healthy throughout."""
    reason = FILTERS[name][1]
    verdicts = _verdicts(clips[name])
    assert len(verdicts) == 13 * FPS
    assert {r for t, r in verdicts if t < AT + 1.0} == {''}
    assert verdicts[-1][1] == reason
    if reason:
        assert {r for t, r in verdicts[-10:]} == {reason}

"""The node's frame scheduling: the model on a steady detection_rate_hz of the frames, the
fire stage on every frame, and a bounded queue between the reader and the worker."""

from detector_media import flame_frames

from v2x_detector.pipeline import Pipeline
from v2x_detector.rules import KIND_FIRE, NEW, HazardRules
from v2x_detector.sources import Frame, FrameQueue


def test_model_sees_eight_frames_a_second_and_fire_sees_every_frame(backends):
    """At 8 Hz on 25 fps flames (4 s: a fire must last fire_persist_s): ~8 model frames a
    second; the flicker, measured on every frame, still gives the one fire alert it gives
    when the model sees every frame."""
    frames = flame_frames(100)
    pipeline = Pipeline(backends('onnx'), HazardRules(), detection_rate_hz=8.0)
    results = [pipeline.process(f, 1000.0 + i / 25) for i, f in enumerate(frames)]
    assert abs(pipeline.model_frames - 8 * 100 / 25) <= 1
    assert sum(r.looked for r in results) == pipeline.model_frames and results[0].looked
    assert all(r.fire for r in results)
    events = [e for r in results for e in r.events]
    assert [(e.phase, e.kind) for e in events] == [(NEW, KIND_FIRE)]


def test_frame_queue_keeps_order_and_drops_the_oldest_when_full():
    """A full queue drops its oldest frame (counted); the worker gets the rest in order."""
    queue = FrameQueue(3)
    for i in range(5):
        assert queue.put(Frame(None, float(i), i))
    assert queue.dropped == 2
    assert [queue.get(0.1).index for _ in range(3)] == [2, 3, 4]
    assert queue.get(0.01) is None
    queue.close()
    assert not queue.put(Frame(None, 9.0, 9))

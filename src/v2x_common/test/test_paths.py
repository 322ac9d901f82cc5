"""make_dirs, the one way every node prepares its directories: says what it made,
refuses with the parameter's name and the fix (no ROS needed)."""

import os

import pytest

from v2x_common.params import ParameterError
from v2x_common.paths import make_dirs


def test_make_dirs_says_what_it_made_and_nothing_when_there(tmp_path):
    """Only the directories that were missing get a line; existing ones give none."""
    (tmp_path / 'state').mkdir()
    lines = make_dirs(recording_dir=str(tmp_path / 'rec'), state_dir=str(tmp_path / 'state'))
    assert len(lines) == 1 and lines[0].startswith(f'created {tmp_path / "rec"}')
    assert make_dirs(recording_dir=str(tmp_path / 'rec')) == []


@pytest.mark.skipif(os.geteuid() != 0, reason='chown to another uid needs root')
def test_make_dirs_refuses_a_directory_of_nobody_naming_the_parameter(tmp_path):
    """A directory that belongs to nobody is refused, naming the parameter and the chown."""
    archive = tmp_path / 'archive'
    archive.mkdir()
    os.chown(archive, 65534, 65534)
    with pytest.raises(ParameterError) as err:
        make_dirs(archive_dir=str(archive))
    assert err.value.name == 'archive_dir' and 'sudo chown' in str(err.value)


def test_make_dirs_refuses_a_file_where_a_directory_belongs(tmp_path):
    """A file in the way is named."""
    (tmp_path / 'rec').write_text('x')
    with pytest.raises(ParameterError) as err:
        make_dirs(recording_dir=str(tmp_path / 'rec' / 'sub'))
    assert err.value.name == 'recording_dir' and 'not a directory' in str(err.value)

"""event_intake's start-up refusals name the cause and the fix: directories it makes or
cannot use, an HTTP port in use, an address not on this host (no ROS needed)."""

import os
import socket

import pytest

from v2x_common.params import ParameterError
from v2x_common.paths import prepare_dir
from v2x_http.server import bind_or_explain


def test_missing_directory_is_made_and_said(tmp_path):
    """A missing directory (and its missing parents) is created, and the line says which,
    with owner and mode (was: created silently)."""
    target = tmp_path / 'opt' / 'v2x' / 'events'
    line = prepare_dir(str(target), 'events_dir')
    assert target.is_dir()
    assert line.startswith(f'created {tmp_path / "opt"}, {tmp_path / "opt" / "v2x"}, {target}')
    assert 'mode 0' in line and 'owner ' in line
    if os.geteuid() == 0:
        assert 'made as root' in line and f'chown -R v2x:v2x {tmp_path / "opt"}' in line
    assert prepare_dir(str(target), 'events_dir') is None  # there now: nothing to say


@pytest.mark.skipif(os.geteuid() != 0, reason='chown to another uid needs root')
@pytest.mark.parametrize('uid, words', [(4242, 'uid 4242, which is no user of this host'),
                                        (65534, 'the overflow user')])
def test_directory_of_nobody_is_refused(tmp_path, uid, words):
    """A directory owned by a uid without an account, or by nobody: refused, naming the
    parameter, the owner and the chown that fixes it."""
    target = tmp_path / 'archive'
    target.mkdir()
    os.chown(target, uid, -1)
    with pytest.raises(ParameterError) as info:
        prepare_dir(str(target), 'events_dir')
    text = str(info.value)
    assert info.value.name == 'events_dir' and words in text
    assert f'sudo chown root {target}' in text


def test_a_file_where_a_directory_belongs_is_refused(tmp_path):
    """A regular file in the way is named."""
    (tmp_path / 'events').write_text('')
    with pytest.raises(ParameterError, match='is not a directory'):
        prepare_dir(str(tmp_path / 'events' / 'sub'), 'events_dir')


def test_port_in_use_is_named():
    """A taken port: the message names host:port, says it is in use and how to find the
    holder (was only '[Errno 98] Address already in use')."""
    holder = socket.socket()
    holder.bind(('127.0.0.1', 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        with pytest.raises(ParameterError) as info:
            bind_or_explain('127.0.0.1', port, 'http_host', 'http_port')
    finally:
        holder.close()
    assert info.value.name == 'http_port'
    assert f'127.0.0.1:{port} is already in use' in str(info.value)
    assert f'sport = :{port}' in str(info.value)


def test_address_not_on_this_host_is_named():
    """http_host set to an address of another machine: named as not on this host."""
    with pytest.raises(ParameterError) as info:
        bind_or_explain('10.9.9.9', 0, 'http_host', 'http_port')
    assert info.value.name == 'http_host'
    assert '10.9.9.9 is no address of this host' in str(info.value)

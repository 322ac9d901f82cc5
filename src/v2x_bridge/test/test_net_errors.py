"""net.py's start-up errors name the cause and the fix (no bare `[Errno 99]`)."""

import socket

import pytest

from v2x_bridge import net

GROUP, PORT = '239.20.20.77', 5577


@pytest.mark.parametrize('opener', [net.open_receiver, net.open_sender])
def test_address_not_on_this_host_is_named_with_the_choices(opener):
    """An iface address no interface has: the message names it, says it is not on this
    host and lists the interfaces (was only '[Errno 99] Cannot assign requested address')."""
    with pytest.raises(ValueError) as info:
        opener(GROUP, PORT, '10.9.9.9')
    text = str(info.value)
    assert text.startswith('iface 10.9.9.9: no interface of this host has that address')
    assert 'Errno' not in text
    assert all(name in text for _, name in socket.if_nameindex())


def test_unknown_interface_name_lists_the_choices():
    """An interface name that does not exist lists those that do."""
    with pytest.raises(ValueError, match=r"no network interface named 'wlan9'; this host "
                                         r'has: .*lo'):
        net.open_receiver(GROUP, PORT, 'wlan9')


def test_loopback_still_works():
    """The explanation does not get in the way of a good iface."""
    net.open_receiver(GROUP, PORT, '127.0.0.1').close()
    net.open_sender(GROUP, PORT, 'lo').close()

"""Listening addresses: which ones serve this host only."""

import ipaddress


def is_loopback(address: str) -> bool:
    """True for 'localhost' and the loopback addresses (127.0.0.0/8, ::1): a server bound
    there serves this host only."""
    if address == 'localhost':
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False

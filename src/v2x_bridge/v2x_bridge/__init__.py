"""Signed UDP multicast alert gateway, event intake, and the seed-compatible CLI tools."""

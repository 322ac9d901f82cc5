"""Shared pieces of the V2X workspace.

QoS profiles, diagnostics helper, seed string<->constant maps, time helpers.
"""

"""Geodesy constants shared by the nodes (pure Python).

One Earth radius for every distance and map projection of the workspace: the policy's
great-circle distances and the gateway's ENU markers.
"""

#: Mean Earth radius (IUGG), metres.
EARTH_RADIUS_M = 6_371_008.8

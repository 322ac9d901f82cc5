"""Ring-buffer recording of the RSU camera and evidence clips around events."""

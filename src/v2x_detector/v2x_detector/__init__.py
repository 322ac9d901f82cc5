"""hazard_detector: finds collisions, fires and blockages in road video with YOLO."""

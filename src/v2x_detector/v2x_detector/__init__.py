"""hazard_detector: finds collisions, fires and blockages in road video with YOLO.

Layers (imports point down): rules.py, fire.py, tracker.py, onnx_backend.py, sources.py,
assets.py, sequence.py, pipeline.py are pure (no rclpy, no v2x_msgs); conversions.py turns
core events and frames into messages; hazard_detector.py is the node.
"""

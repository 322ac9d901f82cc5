"""speed_policy: a cmd_vel safety filter that slows or stops the vehicle on V2X alerts."""

"""v2x_denm: our alerts as ETSI DENM (codec, BTP-B/GeoNetworking framing, CLI, gateway)."""

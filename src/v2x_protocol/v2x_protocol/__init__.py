"""The V2X alert protocol core, sans-IO (like h11): bytes in, events out.

wire (datagram codec), receiver (verification, dedup, replay, expiry rules), sender
(identity, signing, repeats), keys (secrets, trust store), peers (heartbeat table),
state (sequence and outbox files). Pure Python: no rclpy, no sockets, no framework;
clocks, keys and configuration come in as arguments. docs/protocol.md is its contract.
"""

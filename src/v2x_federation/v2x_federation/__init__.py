"""Federation of the signed V2X datagrams through an MQTT v5 broker.

quadkey (tile maths), topics (the topic scheme, tile subscriptions), publish (what an RSU
publishes: retain/expiry rules, the offline queue), config (the broker_* parameters):
pure Python. link: the paho-mqtt client (TLS, credentials, reconnects). The broker is
not trusted for integrity: payloads are the gateway's signed datagrams, verified by
v2x_protocol's Receiver on the vehicle. docs/protocol.md ("Federation over MQTT").
"""

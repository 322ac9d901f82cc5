"""v2x_http: the HTTP server of event_intake and v2x_console (no ROS, no application code).

server: ``bind`` / ``bind_or_explain`` (a listening socket, or a refusal naming the node's
parameter, the cause and the fix) and ``HttpServer`` (uvicorn on that socket in a
supervised thread, holding against slow, idle and too many clients).
"""

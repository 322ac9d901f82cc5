"""Keep a node's start-up objects out of the garbage collector's full passes.

A full collection walks every tracked object: with rclpy, the message modules and the
node built (~50,000 objects) it paused a node ~0.1-0.25 s on the loaded 2-core machine,
longer than speed_policy's input period. Those objects live as long as the process, so
gc.freeze() after building the node moves them out of every later pass (acyclic garbage
is still freed by reference counting; only what the node holds later is walked)::

    run_node(NODE_NAME, frozen_after(SpeedPolicy), args)
"""

import gc
from typing import Callable, TypeVar

T = TypeVar('T')


def frozen_after(factory: Callable[[], T]) -> Callable[[], T]:
    """factory, then gc.freeze() once it has built the node."""
    def build() -> T:
        node = factory()
        gc.freeze()
        return node
    return build

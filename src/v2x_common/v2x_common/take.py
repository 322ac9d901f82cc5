"""Drain a subscription's queue inside its callback (rclpy, any distro from Humble on).

Each wake-up of an rclpy executor costs about 1 ms here (it rebuilds its wait set), while
handling one alert costs tens of microseconds, so a reader taking one message per
wake-up falls behind a burst. A callback that goes on taking what is queued behind its
message handles a burst at the cost of the messages themselves::

    def _on_alert(self, msg):
        self._handle(msg)
        for msg in queued(self._alert_sub, ALERT_BATCH - 1):
            self._handle(msg)
"""

from typing import Iterator


def queued(subscription, limit: int) -> Iterator[object]:
    """Up to limit messages already queued in subscription's reader, oldest first.

    rclpy has no public take(): this is the call its executors make (the same on Humble
    and Kilted). Should it ever fail, it yields nothing more and the executor delivers
    the rest one callback each, as usual."""
    for _ in range(limit):
        try:
            with subscription.handle:
                taken = subscription.handle.take_message(subscription.msg_type,
                                                         subscription.raw)
        except (AttributeError, TypeError, RuntimeError):  # RuntimeError: InvalidHandle
            return
        if taken is None:
            return
        yield taken[0]

"""v2x_inject: publish one v2x_msgs/Alert (default on /v2x/alert_out), as `ros2 topic pub`.

From the seed server's flags (--type --severity --distance-m --suggest --road --lat --lon
--ttl-s, plus --clip --cancel --sequence --source-id), or from a YAML mapping of Alert
fields (--yaml "{kind: 1, severity: 3, road: A}"; kind/severity/suggest may be names).
Waits up to --wait-s for a subscriber, publishes, waits for it to be acknowledged, prints
what it sent and exits 0 (6 when nobody subscribed in time). Fields outside the protocol's
range table are refused (exit 2, naming the field). A cancellation waits up to --confirm-s
for the gateway to send it (v2x/alert_sent) and exits 1 when it does not: the gateway
holds no live event with that sequence.
"""

import argparse
import sys
import time

import rclpy
import yaml

from v2x_bridge import cli
from v2x_common import qos
from v2x_common.alert_flags import NAMED_FIELDS, add_alert_flags
from v2x_common.exit_codes import ExitCode
from v2x_common.mappings import UnknownValue
from v2x_conversion.alert import alert_from_flags, alert_from_msg, alert_to_msg
from v2x_msgs.msg import Alert
from v2x_protocol.sender import check_input
from v2x_protocol.wire import InvalidMessage


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog='v2x_inject', description=__doc__.split('\n')[0])
    p.add_argument('--topic', default='/v2x/alert_out', help='default %(default)s')
    p.add_argument('--yaml', default='', help='Alert fields as YAML (flags are then ignored)')
    p.add_argument('--source-id', default='', help="default '' (the gateway's own id)")
    p.add_argument('--wait-s', type=float, default=10.0,
                   help='wait this long for a subscriber (default 10)')
    p.add_argument('--confirm-s', type=float, default=5.0,
                   help='a cancellation: wait this long for the gateway to send it '
                   '(default 5)')
    add_alert_flags(p, ttl_default=0.0)
    return p


_INT_BITS = {'uint8': (0, 8), 'uint16': (0, 16), 'uint32': (0, 32), 'uint64': (0, 64),
             'int8': (1, 8), 'int16': (1, 16), 'int32': (1, 32), 'int64': (1, 64)}


def _convert(ftype: str, value, where: str):
    """value checked and converted for a primitive field of type ftype."""
    if ftype in _INT_BITS:
        signed, bits = _INT_BITS[ftype]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f'{where}: {value!r} is not an integer')
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if not lo <= value <= hi:
            raise ValueError(f'{where}: {value} outside {ftype} range {lo}..{hi}')
        return value
    if ftype in ('float', 'double'):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f'{where}: {value!r} is not a number')
        return float(value)  # 'nan' and 'inf' strings work too
    if ftype == 'boolean':
        if not isinstance(value, bool):
            raise ValueError(f'{where}: {value!r} is not true/false')
        return value
    if ftype == 'string':
        return str(value)
    raise ValueError(f'{where}: fields of type {ftype} are not supported')


def set_fields(msg, values: dict, path: str = ''):
    """Set message fields from a (nested) dict, as `ros2 topic pub` does; raises ValueError."""
    if not isinstance(values, dict):
        raise ValueError(f'{path.rstrip(".") or "message"}: expected a mapping, got {values!r}')
    types = msg.get_fields_and_field_types()
    for name, value in values.items():
        where = f'{path}{name}'
        if name not in types:
            raise ValueError(f'{where}: no such field in {type(msg).__name__}')
        current = getattr(msg, name)
        if hasattr(current, 'get_fields_and_field_types'):
            set_fields(current, value, where + '.')
            continue
        if name in NAMED_FIELDS and isinstance(value, str) and not path:
            value = NAMED_FIELDS[name](value)
        try:
            value = _convert(types[name], value, where)
        except OverflowError:
            raise ValueError(f'{where}: {value!r} out of range') from None
        setattr(msg, name, value)
    return msg


def from_flags(args) -> Alert:
    """The Alert the flags describe (zeros left for the gateway to fill)."""
    return alert_to_msg(alert_from_flags(args), frame_id='')


def summary(m: Alert, topic: str) -> str:
    """One line saying what was published."""
    return (f'[INJECT] {topic} {cli.describe(alert_from_msg(m))} road={m.road} '
            f'lat={m.latitude} lon={m.longitude} validity_s={m.validity_s:g} '
            f'clip={m.clip_requested} cancelled={m.cancelled}')


def build(args) -> Alert:
    """The Alert to publish, checked against the range table; raises ValueError naming the
    field (what the gateway would refuse is refused here)."""
    if args.yaml:
        msg = set_fields(Alert(), yaml.safe_load(args.yaml) or {})
    else:
        msg = from_flags(args)
    try:
        check_input(alert_from_msg(msg, strict=True))
    except InvalidMessage as exc:
        raise ValueError(str(exc)) from None
    return msg


def _sent_topic(topic: str) -> str:
    base = topic[:-len('alert_out')] if topic.endswith('alert_out') else topic + '_'
    return base + 'alert_sent'


#: Nodes that read alert_out only to watch it (never send what they read).
PASSIVE_READERS = ('v2x_metrics_exporter',)


def main(argv=None, env=None) -> int:
    """Publish the alert; see --help."""
    args = parser().parse_args(argv)
    if args.cancel and not args.sequence and not args.yaml:
        print('v2x_inject: --cancel needs --sequence N of the event to cancel', file=sys.stderr)
        return ExitCode.USAGE
    try:
        msg = build(args)
    except (ValueError, UnknownValue, yaml.YAMLError) as exc:
        print(f'v2x_inject: {exc}', file=sys.stderr)
        return ExitCode.USAGE
    rclpy.init()
    node = rclpy.create_node('v2x_inject')
    confirmed = []
    try:
        if msg.cancelled:
            node.create_subscription(
                Alert, _sent_topic(args.topic),
                lambda m: confirmed.append(m) if (m.cancelled and m.sequence == msg.sequence)
                else None, qos.ALERT_SENT)
        pub = node.create_publisher(Alert, args.topic, qos.ALERT_OUT)
        deadline = time.monotonic() + args.wait_s
        while not _gateway_matched(node, pub) and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        if not _gateway_matched(node, pub):
            print(f'v2x_inject: no subscriber on {pub.topic_name} within {args.wait_s:g} s '
                  '(is the gateway running, on this ROS_DOMAIN_ID?)', file=sys.stderr)
            return ExitCode.NO_SUBSCRIBER
        pub.publish(msg)
        pub.wait_for_all_acked()
        if msg.cancelled:
            deadline = time.monotonic() + args.confirm_s
            while not confirmed and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=0.05)
            if not confirmed:
                print(f'v2x_inject: the gateway did not send the cancellation of sequence '
                      f'{msg.sequence} within {args.confirm_s:g} s: it holds no live event '
                      'with that sequence (its log says dropped alert_out_unknown_event)',
                      file=sys.stderr)
                return ExitCode.ERROR
            msg = confirmed[0]  # what was sent: the event's own fields
        print(summary(msg, pub.topic_name), flush=True)
        return ExitCode.OK
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def _gateway_matched(node, pub) -> bool:
    """True once a reader of a named node other than a passive one (the metrics exporter)
    is in the graph and the publisher has matched every reader the graph knows: the
    exporter, discovered first, must not let the alert go out before the gateway can
    receive it. (Discovery is incremental: a reader may show before its node's name, as
    _NODE_NAME_UNKNOWN_, and a node before all its readers.)"""
    readers = node.get_subscriptions_info_by_topic(pub.topic_name)
    active = [r for r in readers
              if r.node_name not in PASSIVE_READERS and not r.node_name.startswith('_')]
    return bool(active) and pub.get_subscription_count() >= len(readers)


if __name__ == '__main__':
    sys.exit(main())

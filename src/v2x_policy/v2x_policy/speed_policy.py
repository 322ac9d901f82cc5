"""speed_policy: a cmd_vel safety filter that slows down or stops the vehicle on V2X alerts.

A thin shell around v2x_policy.policy (Nav2 collision_monitor style): every command on
cmd_vel_in goes out on cmd_vel, filtered by the decision in force; a stricter decision
also re-sends the last fresh command at once; a stale input gets one zero command and
nothing more until input resumes. PolicyState goes out on change and at 1 Hz.
"""

from dataclasses import dataclass
import sys
import time

from geometry_msgs.msg import Twist, TwistStamped
from rclpy.node import Node
from sensor_msgs.msg import NavSatFix, NavSatStatus
from std_srvs.srv import SetBool

from v2x_common import qos
from v2x_common.diagnostics import OK, WARN, Diagnostics
from v2x_common.gcfreeze import frozen_after
from v2x_common.node_main import run_node
from v2x_common.params import ANY, Param, check, declare_parameters, in_range, one_of
from v2x_common.take import queued
from v2x_conversion.alert import alert_from_msg
from v2x_msgs.msg import Alert, PeerArray, PolicyState
from v2x_policy import conversions
from v2x_policy.policy import (
    RSU_CAMERA_ACTIONS,
    RSU_STALE_ACTIONS,
    AlertReceived,
    EnabledSet,
    FixReceived,
    PeersReceived,
    PolicySettings,
    State,
    TimePassed,
    filter_twist,
    step,
)
from v2x_policy.rules import (
    ACTION_NAMES,
    ACTION_NONE,
    DEFAULT_RULE_NAMES,
    DEFAULT_RULES,
    FIELDS,
    parse_rules,
)

NODE_NAME = 'speed_policy'
#: How often time-driven changes (expiry, release after hold, stale input) are checked.
TICK_PERIOD_S = 0.05
#: PolicyState is re-published at this period even when nothing changed.
STATE_PERIOD_S = 1.0
BYPASS_CHECK_S = 2.0  # how often the output topic's other publishers are counted
#: Alerts handled per wake-up of the v2x/alert subscription: the callback drains the
#: reader's queue, since each executor wake-up costs about 1 ms in rclpy while an alert
#: costs the policy ~0.1 ms; a burst then goes through quickly, and a command waits at
#: most one batch (~20 ms, under the 50 ms input period) behind it.
ALERT_BATCH = 200

_RULE_FIELD_HELP = {
    'kinds': "alert kinds this rule covers (collision, fire, blockage, unknown) or 'any'",
    'max_distance_m': 'act when the event is at most this far (m)',
    'min_severity': 'lowest severity acted on: low, medium or high',
    'suggest': "sender's suggestions matched (none, slow_down, stop) or 'any'",
    'action': 'slow_down or stop',
    'when_unknown': 'with no distance known: act or ignore',
}


def _stale_action(value: str) -> str | None:
    if value.strip().lower() in RSU_STALE_ACTIONS:
        return None
    return f'unknown value {value!r}; expected one of {", ".join(RSU_STALE_ACTIONS)}'


PARAMETERS = (
    Param('stamped', False, 'cmd_vel_in/cmd_vel are TwistStamped'),
    Param('slowdown_ratio', 0.5, 'slow down: linear and angular velocity scaled by this',
          in_range(0.0, 1.0)),
    Param('slowdown_max_speed', 1.0, 'slow down: linear speed capped at this (m/s)',
          in_range(0.0, 1000.0)),
    Param('hold_time_s', 2.0, 'a milder decision takes effect only after this long (s)',
          in_range(0.0, 3600.0)),
    Param('fix_timeout_s', 2.0, 'a fix older than this is not used for distances (s)',
          in_range(0.0, 3600.0)),
    Param('cmd_timeout_s', 0.5, 'cmd_vel_in silent this long: one zero command (s)',
          in_range(0.001, 3600.0)),
    Param('rsu_stale_action', 'keep', 'an RSU stale in v2x/peers while an alert acts: keep '
          '(act until expiry) or stop', check(' or '.join(RSU_STALE_ACTIONS), _stale_action)),
    Param('rsu_camera_action', 'keep', "an RSU whose heartbeat says 'rsu degraded: camera "
          "...' while an alert acts: keep (a camera fault must not stop a fleet) or stop",
          one_of(*RSU_CAMERA_ACTIONS)),
    Param('allow_unauthenticated_stop', False, 'let unauthenticated alerts (DENM, '
          'unsigned) stop the vehicle; by default they can only slow it down'),
    Param('rules', list(DEFAULT_RULE_NAMES), 'rule names; each has <name>.kinds, '
          '.max_distance_m, .min_severity, .suggest, .action, .when_unknown'),
)


def rule_parameters(rule: str) -> tuple[Param, ...]:
    """The rows of one rule's fields (dynamically typed: parse_rules checks them, and a
    missing entry reads as None and is reported by name)."""
    defaults = DEFAULT_RULES.get(rule, {})
    return tuple(Param(f'{rule}.{field}', defaults.get(field), _RULE_FIELD_HELP[field],
                       type=ANY) for field in FIELDS)


@dataclass(frozen=True)
class Settings:
    """Every parameter, read once at start-up: the core's and the shell's own."""

    policy: PolicySettings   # what decisions depend on (the core's settings)
    stamped: bool
    cmd_timeout_s: float


def read_settings(node: Node) -> Settings:
    """Declare every parameter (the table, then each listed rule's fields), read them
    once, validate; raises ParameterError naming the parameter."""
    values = declare_parameters(node, PARAMETERS)

    def fields_of(rule: str) -> dict:
        return {name.split('.', 1)[1]: value for name, value in
                declare_parameters(node, rule_parameters(rule)).items()}

    rules = parse_rules(values['rules'], fields_of)
    policy = PolicySettings(
        rules=rules, rsu_stale_action=values['rsu_stale_action'].strip().lower(),
        rsu_camera_action=values['rsu_camera_action'],
        allow_unauthenticated_stop=values['allow_unauthenticated_stop'],
        **{name: values[name] for name in ('slowdown_ratio', 'slowdown_max_speed',
                                           'hold_time_s', 'fix_timeout_s')})
    return Settings(policy, values['stamped'], values['cmd_timeout_s'])


class SpeedPolicy(Node):
    """cmd_vel_in -> cmd_vel, slowed down or stopped while an alert rule matches."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        node_settings = read_settings(self)
        self.settings = node_settings.policy  # step()'s
        self.stamped, self.cmd_timeout_s = node_settings.stamped, node_settings.cmd_timeout_s
        self.state = State()
        self.counts = dict.fromkeys((
            'alerts_received', 'alerts_new', 'alerts_updated', 'alerts_cancelled',
            'alerts_repeated', 'alerts_older', 'alerts_expired', 'alerts_invalid',
            'cmd_in', 'cmd_out', 'cmd_dropped_nonfinite', 'stale_zero_sent', 'fixes',
            'fixes_invalid', 'decisions_changed'), 0)
        self._last_cmd = None  # the last finite command received
        self._last_cmd_at = None  # time.monotonic() of its arrival
        self._zero_sent = False  # the stale-input zero went out for this silence
        self._published_state = None  # (decision, enabled) last published
        self._dropped_logged = 0  # alerts_invalid + alerts_expired when last logged
        self._last_dropped = ''

        self._twist_type = TwistStamped if self.stamped else Twist
        self._cmd_pub = self.create_publisher(self._twist_type, 'cmd_vel', qos.CMD_VEL)
        self._state_pub = self.create_publisher(PolicyState, 'v2x/policy_state',
                                                qos.POLICY_STATE)
        self._alert_sub = self.create_subscription(Alert, 'v2x/alert', self._on_alert,
                                                   qos.ALERT_READER)
        self.create_subscription(self._twist_type, 'cmd_vel_in', self._on_cmd, qos.CMD_VEL)
        self.create_subscription(NavSatFix, 'fix', self._on_fix, qos.SENSOR_DATA)
        self.create_subscription(PeerArray, 'v2x/peers', self._on_peers, qos.PEERS)
        self.create_service(SetBool, '~/set_enabled', self._on_set_enabled)
        self.create_timer(TICK_PERIOD_S, self._on_tick)
        self.create_timer(STATE_PERIOD_S, self._on_state_timer)
        self.diagnostics = Diagnostics(self, status_fn=self._health)
        # Another writer on our output bypasses the filter (a controller left on cmd_vel).
        self._bypassers: list[str] = []
        self.create_timer(BYPASS_CHECK_S, self._check_bypass)
        self._publish_state()
        names = ', '.join(f'{r.name}={ACTION_NAMES[r.action]}@{r.max_distance_m:g}m'
                          for r in self.settings.rules)
        self.get_logger().info(
            f'filtering cmd_vel_in -> cmd_vel ({"TwistStamped" if self.stamped else "Twist"});'
            f' rules: {names}; slowdown x{self.settings.slowdown_ratio:g} capped at '
            f'{self.settings.slowdown_max_speed:g} m/s; hold {self.settings.hold_time_s:g} s')

    # -- decisions ---------------------------------------------------------------------

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds / 1e9

    def _step(self, event, resend: bool = True) -> str:
        before = self.state.decision
        self.state, note = step(self.state, event, self.settings)
        after = self.state.decision
        if not after.same_reason(before):
            self.counts['decisions_changed'] += 1
            self._log_change(after)
            if resend and after.action > before.action:
                self._resend_last()  # a stricter decision acts now, not at the next input
        published, was_enabled = self._published_state
        if not after.same_reason(published) or self.state.enabled != was_enabled:
            self._publish_state()  # on change; the distance alone is not a change
        return note

    def _log_change(self, decision) -> None:
        if not self.state.enabled:
            return  # the service call logged the switch
        if decision.action == ACTION_NONE:
            self.get_logger().info('released: commands pass unchanged')
        else:
            self.get_logger().info(
                f'{ACTION_NAMES[decision.action]} by rule {decision.rule} for alert '
                f'{decision.source_id}/{decision.sequence} at {decision.distance_m:.0f} m')

    def _on_alert(self, msg: Alert) -> None:
        """The callback: this alert, then those queued behind it (ALERT_BATCH at most)."""
        self._handle_alert(msg)
        for more in queued(self._alert_sub, ALERT_BATCH - 1):
            self._handle_alert(more)

    def _handle_alert(self, msg: Alert) -> None:
        self.counts['alerts_received'] += 1
        note = self._step(AlertReceived(alert_from_msg(msg), self._now()))
        key = {'new': 'alerts_new', 'update': 'alerts_updated', 'cancel': 'alerts_cancelled',
               'repeat': 'alerts_repeated', 'older': 'alerts_older',
               'expired': 'alerts_expired', 'invalid': 'alerts_invalid'}[note]
        self.counts[key] += 1
        if note in ('invalid', 'expired'):
            self._last_dropped = f'{msg.source_id}/{msg.sequence}: {note}'  # logged at 1 Hz

    def _log_dropped(self) -> None:
        """One warning per STATE_PERIOD_S at most for the alerts dropped since the last one
        (a log call per alert would slow a burst: rclpy's throttled logger costs ~0.5 ms)."""
        dropped = self.counts['alerts_invalid'] + self.counts['alerts_expired']
        if dropped > self._dropped_logged:
            self.get_logger().warning(
                f'dropped {dropped - self._dropped_logged} alerts (invalid or expired); '
                f'last: {self._last_dropped}')
            self._dropped_logged = dropped

    def _on_fix(self, msg: NavSatFix) -> None:
        if msg.status.status < NavSatStatus.STATUS_FIX:
            return  # no fix: the last good one ages out after fix_timeout_s
        note = self._step(FixReceived(msg.latitude, msg.longitude, self._now()))
        self.counts['fixes_invalid' if note == 'invalid' else 'fixes'] += 1

    def _on_peers(self, msg: PeerArray) -> None:
        self._step(PeersReceived(conversions.stale_rsus_from_msg(msg), self._now(),
                                 conversions.camera_degraded_rsus_from_msg(msg)))

    def _on_set_enabled(self, request, response):
        self._step(EnabledSet(bool(request.data), self._now()))
        if request.data:
            self.get_logger().info('ENABLED: alerts filter cmd_vel again')
            response.message = 'speed_policy enabled'
        else:
            self.get_logger().error('DISABLED by service call: cmd_vel_in passes to cmd_vel '
                                    'UNFILTERED; alerts are ignored until re-enabled')
            response.message = 'speed_policy disabled: commands pass through unfiltered'
        response.success = True
        return response

    def _on_tick(self) -> None:
        self._step(TimePassed(self._now()))
        if not self.state.enabled:
            self.get_logger().warning('speed_policy is DISABLED: commands pass unfiltered',
                                   throttle_duration_sec=10.0)
        if (self._last_cmd_at is not None and not self._zero_sent
                and time.monotonic() - self._last_cmd_at > self.cmd_timeout_s):
            self._zero_sent = True
            self.counts['stale_zero_sent'] += 1
            zero = self._twist_type()
            if self.stamped:
                zero.header.frame_id = self._last_cmd.header.frame_id
                zero.header.stamp = self.get_clock().now().to_msg()
            self._cmd_pub.publish(zero)
            self.counts['cmd_out'] += 1

    # -- commands ----------------------------------------------------------------------

    def _on_cmd(self, msg) -> None:
        self.counts['cmd_in'] += 1
        if not conversions.twist_is_finite(msg.twist if self.stamped else msg):
            self.counts['cmd_dropped_nonfinite'] += 1
            self.get_logger().warning('dropped a cmd_vel_in with NaN or infinite values',
                                   throttle_duration_sec=5.0)
            return
        self._last_cmd, self._last_cmd_at, self._zero_sent = msg, time.monotonic(), False
        # Expiry and release are current for this command, which goes out next anyway.
        self._step(TimePassed(self._now()), resend=False)
        self._publish_filtered(msg)

    def _resend_last(self) -> None:
        if self._last_cmd is not None and not self._zero_sent:
            self._publish_filtered(self._last_cmd)

    def _publish_filtered(self, msg) -> None:
        out = self._twist_type()
        if self.stamped:
            out.header = msg.header
        twist_in = msg.twist if self.stamped else msg
        twist_out = out.twist if self.stamped else out
        linear, angular = conversions.twist_parts(twist_in)
        linear, angular = filter_twist(self.state.decision.action, linear, angular,
                                       self.settings)
        conversions.fill_twist(twist_out, linear, angular)
        self._cmd_pub.publish(out)
        self.counts['cmd_out'] += 1

    # -- outputs -----------------------------------------------------------------------

    def _on_state_timer(self) -> None:
        self._publish_state()
        self._log_dropped()

    def _publish_state(self) -> None:
        decision = self.state.decision
        self._published_state = (decision, self.state.enabled)
        self._state_pub.publish(conversions.state_to_msg(
            decision, self.state.enabled, self.settings, self.get_clock().now().to_msg()))

    def _check_bypass(self) -> None:
        # Publishers on our output topic other than this node: each bypasses the filter.
        topic = self._cmd_pub.topic_name
        me = (self.get_name(), self.get_namespace())
        self._bypassers = sorted(
            f'{info.node_namespace.rstrip("/")}/{info.node_name}'
            for info in self.get_publishers_info_by_topic(topic)
            if (info.node_name, info.node_namespace) != me)
        if self._bypassers:
            self.get_logger().warning(
                f'{len(self._bypassers)} other publisher(s) on {topic}, the filtered output: '
                f'{", ".join(self._bypassers)}; their commands bypass speed_policy. Point '
                'the controller at cmd_vel_in (deploy/README.md)', throttle_duration_sec=30.0)

    def _health(self):
        decision = self.state.decision
        values = dict(self.counts)
        values['other_cmd_vel_publishers'] = ','.join(self._bypassers)
        if self._bypassers:
            return WARN, (f'{", ".join(self._bypassers)} also publish(es) on '
                          f'{self._cmd_pub.topic_name}: they bypass the filter'), values
        values.update(active_alerts=self.state.active_alerts(), enabled=self.state.enabled,
                      action=ACTION_NAMES[decision.action], rule=decision.rule,
                      stale_rsus=','.join(sorted(self.state.stale_rsus)))
        if not self.state.enabled:
            return WARN, 'DISABLED: commands pass through unfiltered', values
        if decision.action == ACTION_NONE:
            return OK, 'no alert in force', values
        return OK, (f'{ACTION_NAMES[decision.action]} by {decision.rule} for '
                    f'{decision.source_id}/{decision.sequence}'), values


def main(args=None) -> int:
    """Run speed_policy until shutdown; exit 2 when a parameter is invalid."""
    return run_node(NODE_NAME, frozen_after(SpeedPolicy), args)


if __name__ == '__main__':
    sys.exit(main())

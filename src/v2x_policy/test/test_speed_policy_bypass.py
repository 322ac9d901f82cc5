"""speed_policy warns when another node publishes on its output topic (a controller left
on cmd_vel bypasses the filter): the log says so and diagnostics turn WARN naming it."""

from geometry_msgs.msg import Twist

from v2x_common import qos
from v2x_common.diagnostics import OK, WARN
from v2x_policy.speed_policy import SpeedPolicy

WAIT = 20.0


def test_other_publisher_on_the_output_is_reported(ros):
    """A second writer on cmd_vel makes health WARN naming it; when it goes, OK again."""
    ns = '/bypass_test'
    policy = ros.add(SpeedPolicy(context=ros.context, namespace=ns))
    policy._check_bypass()
    assert policy._bypassers == [] and policy._health()[0] == OK  # its own publisher
    rogue = ros.node('teleop_left_on_cmd_vel', namespace=ns)
    pub = rogue.create_publisher(Twist, 'cmd_vel', qos.CMD_VEL)
    assert ros.spin_until(lambda: policy._bypassers == [f'{ns}/teleop_left_on_cmd_vel'],
                          WAIT)
    level, message, values = policy._health()
    assert level == WARN and f'{ns}/teleop_left_on_cmd_vel' in message
    assert 'bypass' in message and values['other_cmd_vel_publishers']
    rogue.destroy_publisher(pub)
    assert ros.spin_until(lambda: policy._bypassers == [], WAIT)
    assert policy._health()[0] == OK

"""vehicle_stack: alert_gateway and speed_policy composed in one process, one executor.

The same node classes with the same parameters and topics as the two separate executables
(launch/vehicle.launch.xml with ``compose:=true`` runs this instead of them): one rclpy
context, one DDS participant set, one Python interpreter. Parameter files apply to both
nodes; each declares only its own (the two tables share no name), so a file keyed ``/**``
holding both nodes' parameters configures each. Remaps apply to both (only speed_policy
has cmd_vel_in, cmd_vel and fix). Exit statuses as v2x_common.node_main; a start-up error
names the node that raised it.

The receive thread of the gateway shares the GIL with the cmd_vel path here: the bench
(bench/bench_vehicle.py) measures what that costs under a flood of garbage datagrams.
"""

import sys

from v2x_bridge.alert_gateway import GIL_SWITCH_S, AlertGateway
from v2x_common.gcfreeze import frozen_after
from v2x_common.node_main import run_nodes
from v2x_policy.speed_policy import SpeedPolicy

# built in order: freezing after the last keeps both nodes' start-up objects out of GC passes
NODES = (('alert_gateway', AlertGateway), ('speed_policy', frozen_after(SpeedPolicy)))


def main(args=None) -> int:
    """Run the gateway and the policy in one executor until interrupted."""
    sys.setswitchinterval(GIL_SWITCH_S)
    return run_nodes(NODES, args)


if __name__ == '__main__':
    sys.exit(main())

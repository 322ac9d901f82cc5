"""v2x_make_clip <T0> [--pre S --post S]: the seed's make_clip.py as a CLI.

When event_clipper runs (its v2x/request_clip service answers within --service-timeout),
the request goes to it and the clip follows on v2x/clip (--wait prints it). Otherwise the
clip is cut directly from the recording dir, after waiting for the post-window to be
recorded (unless --no-wait). T0 is epoch seconds, an ISO 8601 time, or 'now'.
"""

import argparse
import contextlib
from datetime import datetime, timezone
import enum
import json
import os
import sys
import time
from typing import Callable, TextIO

from v2x_recorder import clips, cutter, ffmpeg_tools
from v2x_recorder.pending import PendingStore


class Exit(enum.IntEnum):
    """Exit statuses of v2x_make_clip."""

    OK = 0
    FAILED = 1          # ffmpeg failed or the service refused
    USAGE = 2
    NO_FOOTAGE = 3
    NO_FFMPEG = 4
    TIMEOUT = 5         # --wait: no Clip arrived in time


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
                   help=f'seconds before T0 (0 = default, {clips.DEFAULT_PRE_S:g})')
    p.add_argument('--post', type=float, default=0.0,
                   help=f'seconds after T0 (0 = default, {clips.DEFAULT_POST_S:g})')
    p.add_argument('--clip-id', default='', help="clip id (default 'manual-<T0>')")
    p.add_argument('--recording-dir', default='/var/rec', help='direct mode: segments')
    p.add_argument('--archive-dir', default='/var/archive', help='direct mode: output')
    p.add_argument('--state-dir', default='/var/lib/v2x/recorder',
                   help="direct mode: segment_recorder's state_dir, where the wait holds "
                        'the footage as a pending clip')
    p.add_argument('--segment-s', type=float, default=10.0,
                   help="direct mode: the recorder's segment length (for the wait)")
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
    return p


def main(argv=None, env: dict | None = None, out: TextIO | None = None,
         sleep: Callable[[float], None] = time.sleep) -> int:
    """Entry point; argv, env and out are parameters so tests can pass their own."""
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    env = os.environ if env is None else env
    now = time.time()
    try:
        t0 = parse_t0(args.t0, now)
        request = clips.make_request(args.clip_id, t0, args.pre, args.post, origin='cli',
                                     requested_at=now)
    except (argparse.ArgumentTypeError, clips.BadClipRequest) as exc:
        print(f'v2x_make_clip: {exc}', file=sys.stderr)
        return Exit.USAGE
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
        return Exit.NO_FFMPEG
    wait = 0.0 if args.no_wait else clips.due_at(request, args.segment_s) - time.time()
    if wait > 0:
        print(f'v2x_make_clip: waiting {wait:.1f} s for the post-window to be recorded',
              file=sys.stderr)
        with _held(args.state_dir, request):
            sleep(wait)
    result = cutter.cut_clip(request, args.recording_dir, args.archive_dir, tools)
    print(json.dumps(result.sidecar, indent=1, sort_keys=True), file=out)
    if result.path:
        return Exit.OK
    return Exit.NO_FOOTAGE if not result.sidecar.get('segments') else Exit.FAILED


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
        req.pre_s = float(request.pre_s)
        req.post_s = float(request.post_s)
        future = client.call_async(req)
        executor.spin_until_future_complete(future, timeout_sec=10.0)
        if not future.done() or future.result() is None:
            print('v2x_make_clip: event_clipper did not answer', file=sys.stderr)
            return Exit.FAILED
        response = future.result()
        print(json.dumps({'accepted': response.accepted, 'path': response.path,
                          'message': response.message, 'clip_id': request.clip_id}), file=out)
        if not response.accepted:
            return Exit.FAILED
        if not args.wait:
            return Exit.OK
        limit = args.wait_timeout or (clips.due_at(request, args.segment_s) - time.time() + 60.0)
        end = time.monotonic() + max(1.0, limit)
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.2)
            mine = [c for c in clips_seen if c.clip_id == request.clip_id]
            if mine:
                clip = mine[-1]
                print(json.dumps({'clip_id': clip.clip_id, 'path': clip.path,
                                  'sha256': clip.sha256, 'duration_s': clip.duration_s,
                                  'gaps': list(clip.gaps), 'error': clip.error}), file=out)
                return Exit.OK if clip.path else Exit.NO_FOOTAGE
        print('v2x_make_clip: no Clip arrived in time', file=sys.stderr)
        return Exit.TIMEOUT
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


if __name__ == '__main__':
    sys.exit(main())

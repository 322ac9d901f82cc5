"""Bench of v2x_recorder: cutting a 10-minute clip, and the recorder's CPU use.

1. Makes 10 s fragmented segments (as segment_recorder writes them) covering a little more
   than 10 minutes, then times, alternating in the same run:
   - baseline: a bare ``ffmpeg -f concat -c copy`` of the same covering segments;
   - ours: cutter.cut_clip (scan, MP4 durations, plan with inpoint/outpoint, the same
     concat, sha256, sidecar). Target: ours within 1.2x of the baseline.
2. Runs segment_recorder on testsrc and reports its own CPU use beside its ffmpeg's.

    source scripts/env.sh && python bench/bench_clip.py [--rounds 5] [--cpu-seconds 20]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import _path  # noqa: F401  (tests/support: the test harness)
import psutil

from v2x_recorder import cutter, segments
from v2x_recorder.clips import make_request
from v2x_recorder.ffmpeg_tools import SEGMENT_MOVFLAGS, find_ffmpeg
from v2x_testing import random_domain_id


def make_footage(ffmpeg: str, directory: str, start: int, count: int, seg_s: int,
                 size: str, fps: int) -> None:
    """count segments of seg_s seconds, named seg_<start + i*seg_s>.mp4."""
    tmp = os.path.join(directory, '.gen')
    os.makedirs(tmp)
    subprocess.run([
        ffmpeg, '-hide_banner', '-nostdin', '-loglevel', 'error', '-y',
        '-f', 'lavfi', '-i', f'testsrc=size={size}:rate={fps}', '-t', str(count * seg_s),
        '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', str(fps),
        '-sc_threshold', '0', '-force_key_frames', 'expr:gte(t,n_forced*1)',
        '-f', 'segment', '-segment_time', str(seg_s), '-segment_format', 'mp4',
        '-segment_format_options', SEGMENT_MOVFLAGS, '-reset_timestamps', '1',
        os.path.join(tmp, 'p_%04d.mp4')], check=True)
    for i, name in enumerate(sorted(os.listdir(tmp))):
        os.replace(os.path.join(tmp, name),
                   os.path.join(directory, segments.segment_name(start + i * seg_s)))
    os.rmdir(tmp)


def bare_concat(ffmpeg: str, paths: list[str], out_dir: str) -> float:
    """Seconds for a plain stream-copy concat of paths."""
    list_path = os.path.join(out_dir, 'bare.ffconcat')
    with open(list_path, 'w') as f:
        f.write('ffconcat version 1.0\n')
        f.writelines(f"file '{p}'\n" for p in paths)
    out = os.path.join(out_dir, 'bare.mp4')
    t = time.perf_counter()
    subprocess.run(cutter.concat_command(ffmpeg, list_path, out), check=True)
    return time.perf_counter() - t


def bench_cut(args, tools) -> None:
    with tempfile.TemporaryDirectory(prefix='bench_clip_') as root:
        rec, arch = os.path.join(root, 'rec'), os.path.join(root, 'archive')
        os.makedirs(rec)
        start = int(time.time()) - 2000
        count = 62  # 620 s: the 600 s window plus a segment either side
        t = time.perf_counter()
        make_footage(tools.ffmpeg, rec, start, count, 10, args.size, args.fps)
        made_s = time.perf_counter() - t
        total = sum(s.size for s in segments.scan(rec))
        print(f'footage: {count} x 10 s segments, {args.size} @ {args.fps} fps, '
              f'{total / 1e6:.1f} MB, made in {made_s:.1f} s')
        request = make_request('bench', start + 305.0, 300.0, 300.0)
        plan = cutter.plan_from_dir(request, rec, tools)
        paths = [p.path for p in plan.pieces]
        ours, bare = [], []
        for i in range(args.rounds):
            if i % 2:
                bare.append(bare_concat(tools.ffmpeg, paths, root))
            t = time.perf_counter()
            result = cutter.cut_clip(request, rec, arch, tools)
            ours.append(time.perf_counter() - t)
            assert result.path and not result.error, result.error
            if not i % 2:
                bare.append(bare_concat(tools.ffmpeg, paths, root))
        mb = os.path.getsize(result.path) / 1e6
        print(f'10-minute clip ({len(paths)} segments, {result.duration_s:.1f} s, {mb:.1f} MB), '
              f'{args.rounds} rounds, median (min):')
        print(f'  bare ffmpeg concat -c copy : {statistics.median(bare) * 1000:8.1f} ms '
              f'({min(bare) * 1000:.1f})')
        print(f'  cut_clip (plan+concat+sha) : {statistics.median(ours) * 1000:8.1f} ms '
              f'({min(ours) * 1000:.1f})')
        ratio = statistics.median(ours) / statistics.median(bare)
        print(f'  ratio ours/bare            : {ratio:8.2f}x  (target <= 1.20x: '
              f'{"met" if ratio <= 1.2 else "NOT met"})')


def bench_cpu(args) -> None:
    with tempfile.TemporaryDirectory(prefix='bench_rec_') as root:
        env = {**os.environ, 'ROS_DOMAIN_ID': str(random_domain_id())}
        proc = subprocess.Popen(
            [sys.executable, '-m', 'v2x_recorder.segment_recorder', '--ros-args',
             '-p', f'recording_dir:={root}/rec', '-p', f'state_dir:={root}/state',
             '-p', 'segment_s:=2.0', '-p', f'video_size:={args.rec_size}',
             '-p', f'framerate:={args.rec_fps}'],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        node = psutil.Process(proc.pid)
        try:
            time.sleep(5.0)  # past start-up (imports, DDS)
            kids = node.children(recursive=True)
            t0 = time.monotonic()
            n0 = sum(node.cpu_times()[:2])
            k0 = sum(sum(k.cpu_times()[:2]) for k in kids)
            time.sleep(args.cpu_seconds)
            wall = time.monotonic() - t0
            n1 = sum(node.cpu_times()[:2])
            k1 = sum(sum(k.cpu_times()[:2]) for k in kids if k.is_running())
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        print(f'segment_recorder on testsrc {args.rec_size} @ {args.rec_fps} fps, '
              f'2 s segments, {wall:.0f} s (CPU % of one core):')
        print(f'  segment_recorder (Python node) : {100 * (n1 - n0) / wall:6.1f} %')
        print(f'  its ffmpeg (encode + mux)      : {100 * (k1 - k0) / wall:6.1f} %')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--size', default='640x360', help='footage size for the cut bench')
    p.add_argument('--fps', type=int, default=25)
    p.add_argument('--cpu-seconds', type=float, default=20.0)
    p.add_argument('--rec-size', default='640x360')
    p.add_argument('--rec-fps', type=float, default=25.0)
    args = p.parse_args()
    tools = find_ffmpeg()
    print(f'ffmpeg: {tools.ffmpeg}')
    bench_cut(args, tools)
    if args.cpu_seconds > 0:
        bench_cpu(args)


if __name__ == '__main__':
    main()

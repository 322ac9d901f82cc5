"""Bench of v2x_recorder: cutting a 10-minute clip, evidence, and the recorder's CPU use.

1. Makes 10 s fragmented segments (as segment_recorder writes them) covering a little more
   than 10 minutes, then times, alternating in the same run:
   - baseline: a bare ``ffmpeg -f concat -c copy`` of the same covering segments;
   - ours: cutter.cut_clip (scan, MP4 durations, plan with inpoint/outpoint, the same
     concat, sha256, sidecar). Target: ours within 1.2x of the baseline;
   - ours signed: the same with the evidence log (the sidecar signed, a log record
     appended and fsynced, the head signed and replaced); and the signing and chaining
     alone per clip (EvidenceLog.record_clip, many times).
2. v2x_verify_evidence on that 10-minute clip, and on an archive of 1,000 signed
   ten-second clips (real 10 s MP4 files, each its own sidecar, signature and record).
3. The recorder's footprint with the wall-clock anchor (write_prft) and without it, same
   run: ffmpeg's CPU and bytes written; then segment_recorder's own CPU beside its ffmpeg.

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
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import psutil

from v2x_evidence import log as evidence_log
from v2x_protocol.keys import Ed25519Signer
from v2x_recorder import cutter, ffmpeg_tools, segments, v2x_verify_evidence
from v2x_recorder.clips import make_request
from v2x_recorder.ffmpeg_tools import SEGMENT_MOVFLAGS, find_ffmpeg
from v2x_testing import random_domain_id

ALERT = {'source_id': 'rsu_bench', 'origin': '00000000000000aa', 'sequence': 1,
         'kind': 'collision'}


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
        request = make_request('bench', start + 305.0, 300.0, 300.0, alert=ALERT,
                               origin='alert')
        plan = cutter.plan_from_dir(request, rec, tools)
        paths = [p.path for p in plan.pieces]
        signer = Ed25519Signer(Ed25519PrivateKey.generate())
        signed_dir = os.path.join(root, 'signed')
        log = evidence_log.EvidenceLog(signed_dir, signer, 'rsu_bench')
        ours, bare, signed = [], [], []
        for i in range(args.rounds):
            if i % 2:
                bare.append(bare_concat(tools.ffmpeg, paths, root))
            t = time.perf_counter()
            result = cutter.cut_clip(request, rec, arch, tools)
            ours.append(time.perf_counter() - t)
            assert result.path and not result.error, result.error
            t = time.perf_counter()
            cutter.cut_clip(request, rec, signed_dir, tools, log=log)
            signed.append(time.perf_counter() - t)
            if not i % 2:
                bare.append(bare_concat(tools.ffmpeg, paths, root))
        mb = os.path.getsize(result.path) / 1e6
        print(f'10-minute clip ({len(paths)} segments, {result.duration_s:.1f} s, {mb:.1f} MB), '
              f'{args.rounds} rounds, median (min):')
        print(f'  bare ffmpeg concat -c copy : {statistics.median(bare) * 1000:8.1f} ms '
              f'({min(bare) * 1000:.1f})')
        print(f'  cut_clip (plan+concat+sha) : {statistics.median(ours) * 1000:8.1f} ms '
              f'({min(ours) * 1000:.1f})')
        print(f'  cut_clip signed + chained  : {statistics.median(signed) * 1000:8.1f} ms '
              f'({min(signed) * 1000:.1f})')
        ratio = statistics.median(ours) / statistics.median(bare)
        print(f'  ratio ours/bare            : {ratio:8.2f}x  (target <= 1.20x: '
              f'{"met" if ratio <= 1.2 else "NOT met"})')
        bench_sealing(result, log)
        stem = os.path.basename(result.path)[:-4]
        t = time.perf_counter()
        status = v2x_verify_evidence.main([os.path.join(signed_dir, stem + '.mp4')],
                                          out=open(os.devnull, 'w'))
        print(f'  v2x_verify_evidence, this 10-minute clip ({mb:.1f} MB): '
              f'{(time.perf_counter() - t) * 1000:.0f} ms (exit {status})')
        bench_verify_archive(tools, rec, start, root, signer)


def bench_sealing(result, log, count: int = 200) -> None:
    """Signing and chaining alone: sidecar signature, record appended + fsync, head."""
    with open(result.sidecar_path, 'rb') as f:
        data = f.read()
    sidecar = dict(result.sidecar)
    t = time.perf_counter()
    for i in range(count):
        log.record_clip(f'accident_1_seal-{i}', data, sidecar)
    per = (time.perf_counter() - t) / count
    print(f'  signing + chaining alone   : {per * 1000:8.2f} ms per clip ({count} clips: '
          'sidecar signed, record appended and fsynced, head signed and replaced)')


def bench_verify_archive(tools, rec: str, start: int, root: str, signer,
                         count: int = 1000) -> None:
    """v2x_verify_evidence over an archive of count signed ten-second clips."""
    arch = os.path.join(root, 'thousand')
    log = evidence_log.EvidenceLog(arch, signer, 'rsu_bench')
    one = cutter.cut_clip(make_request('ten', start + 100.0, 5.0, 5.0), rec, root, tools)
    with open(one.path, 'rb') as f:
        video = f.read()
    t = time.perf_counter()
    for i in range(count):
        request = make_request(f'rsu_bench-{i}', start + 100.0 + i, 5.0, 5.0,
                               alert={**ALERT, 'sequence': i}, origin='alert')
        with open(os.path.join(arch, request.stem + '.mp4'), 'wb') as f:
            f.write(video)
        sidecar = {**one.sidecar, 'path': os.path.join(arch, request.stem + '.mp4'),
                   'clip_id': request.clip_id, 'event': {**ALERT, 'sequence': i}}
        data = cutter.sidecar_bytes(sidecar)
        with open(os.path.join(arch, request.stem + '.json'), 'wb') as f:
            f.write(data)
        log.record_clip(request.stem, data, sidecar)
    made = time.perf_counter() - t
    total = sum(os.path.getsize(os.path.join(arch, n)) for n in os.listdir(arch))
    rounds = []
    for _ in range(3):
        t = time.perf_counter()
        status = v2x_verify_evidence.main([arch], out=open(os.devnull, 'w'))
        rounds.append(time.perf_counter() - t)
    print(f'  v2x_verify_evidence, archive of {count} ten-second clips '
          f'({total / 1e6:.0f} MB, sealed in {made:.1f} s): median '
          f'{statistics.median(rounds):.2f} s of 3 (exit {status})')


def bench_prft(args, tools) -> None:
    """ffmpeg recording testsrc with and without the wall-clock anchor, alternating."""
    plain = SEGMENT_MOVFLAGS.replace(':write_prft=wallclock', '')
    results = {'without prft': [], 'with prft': []}
    for _ in range(2):
        for name, flags in (('without prft', plain), ('with prft', SEGMENT_MOVFLAGS)):
            with tempfile.TemporaryDirectory(prefix='bench_prft_') as root:
                ffmpeg_tools.SEGMENT_MOVFLAGS = flags
                cmd = ffmpeg_tools.record_command(tools.ffmpeg, ffmpeg_tools.RecordOptions(
                    source='testsrc', recording_dir=root, segment_s=2.0,
                    video_size=args.rec_size, framerate=args.rec_fps))
                ffmpeg_tools.SEGMENT_MOVFLAGS = SEGMENT_MOVFLAGS
                proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(args.cpu_seconds / 2)
                cpu = sum(proc.cpu_times()[:2])
                rss = proc.memory_info().rss
                proc.terminate()
                proc.wait(timeout=20)
                size = sum(os.path.getsize(os.path.join(root, n)) for n in os.listdir(root))
                results[name].append((cpu, size, rss))
    print(f'ffmpeg recording testsrc {args.rec_size} @ {args.rec_fps} fps, 2 s segments, '
          f'{args.cpu_seconds / 2:.0f} s each, 2 rounds alternating:')
    for name, runs in results.items():
        cpu = statistics.mean(r[0] for r in runs) / (args.cpu_seconds / 2)
        size = statistics.mean(r[1] for r in runs)
        rss = statistics.mean(r[2] for r in runs)
        print(f'  {name:13}: CPU {100 * cpu:5.1f} % of a core, {size / 1e6:6.2f} MB '
              f'written, RSS {rss / 1e6:5.1f} MB')


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
        bench_prft(args, tools)
        bench_cpu(args)


if __name__ == '__main__':
    main()

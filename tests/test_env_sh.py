"""scripts/env.sh alone gives a working shell: messages import, executables are on PATH."""

from pathlib import Path
import subprocess

WS = Path(__file__).resolve().parents[1]
EXECUTABLES = ['alert_gateway', 'event_intake', 'v2x_inject', 'v2x_alert_server',
               'v2x_alert_client', 'v2x_keygen', 'hazard_detector', 'segment_recorder',
               'event_clipper', 'v2x_make_clip', 'speed_policy']


def test_env_sh_from_a_bare_environment():
    """From an environment with nothing but HOME and a minimal PATH, sourcing env.sh makes
    every executable of ours resolvable by name and the messages importable."""
    script = (f'source {WS}/scripts/env.sh && '
              + ' && '.join(f'command -v {exe}' for exe in EXECUTABLES)
              + ' && python -c "from v2x_msgs.msg import Alert; from v2x_msgs.srv import '
                'RequestClip; import rclpy; print(Alert.KIND_BLOCKAGE)"'
              + ' && v2x_alert_server --help >/dev/null && echo ok')
    env = {'HOME': str(Path.home()), 'PATH': '/usr/bin:/bin'}
    out = subprocess.run(['bash', '-c', script], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.split()
    for exe in EXECUTABLES:
        assert any(line.endswith(f'/{exe}') and str(WS) in line for line in lines), exe
    assert lines[-2:] == ['3', 'ok']

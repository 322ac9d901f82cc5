"""event_clipper with evidence: no alert left unclipped (the real RSU gateway's transient-local
v2x/alert_sent), each event clipped once, signed clips, and legal holds against the caps.
Real rclpy, real ffmpeg segments, a real Ed25519 key; the nodes run in this process."""

import io
import os
import time

from rclpy.parameter import Parameter

from v2x_bridge.alert_gateway import AlertGateway
from v2x_common import qos
from v2x_common.diagnostics import ERROR
from v2x_common.timeutil import fill_stamp
from v2x_evidence import evidence
from v2x_evidence import log as evidence_log
from v2x_msgs.msg import Alert, Clip
from v2x_recorder import v2x_hold_evidence, v2x_verify_evidence
from v2x_recorder.cutter import cut_clip
from v2x_recorder.event_clipper import EventClipper


def _clipper(ros, rec, root, **extra):
    values = {'recording_dir': rec, 'archive_dir': str(root / 'archive'),
              'state_dir': str(root / 'state'), 'segment_s': 1.0, 'pre_window_s': 2.0,
              'post_window_s': 2.0, 'settle_s': 0.2, 'check_period_s': 0.2,
              'station_id': 'rsu_server_01', **extra}
    return ros.add(EventClipper(context=ros.context, parameter_overrides=[
        Parameter(k, value=v) for k, v in values.items()]))


def _stop(ros, node):
    ros.executor.remove_node(node)
    node.destroy_node()


def _mp4s(root):
    return sorted(n for n in os.listdir(root / 'archive') if n.endswith('.mp4'))


def _collision(t0):
    m = Alert()
    m.kind, m.severity, m.suggest = (Alert.KIND_COLLISION, Alert.SEVERITY_HIGH,
                                     Alert.SUGGEST_SLOW_DOWN)
    m.latitude, m.longitude, m.road, m.distance_m = 37.0, 127.0, 'segment_A', 500.0
    m.clip_requested = True
    fill_stamp(m.detection_time, t0)
    return m


def test_alerts_sent_while_the_clipper_is_down_are_clipped_once_each(
        ros, mcast, tmp_path, monkeypatch, make_segments, make_key):
    """Three alerts the real gateway sent before any clipper ran: a clipper started later
    cuts exactly three signed clips; restarted, it cuts none again; the same source_id and
    sequence under another origin (a station that lost its state) is a new clip."""
    monkeypatch.setenv('V2X_KEY', 'test-secret-0123456789')
    now = int(time.time())
    rec = str(tmp_path / 'rec')
    make_segments(rec, now - 40, count=30, seg_s=1)  # footage of [now-40, now-10]
    gateway = ros.add(AlertGateway(context=ros.context, parameter_overrides=[
        Parameter(k, value=v) for k, v in dict(
            role='rsu', station_id='rsu_server_01', state_dir=str(tmp_path / 'gw'),
            group=mcast['group'], port=mcast['port'], iface=mcast['iface']).items()]))
    probe = ros.node('probe')
    sent, clips = [], []
    probe.create_subscription(Alert, 'v2x/alert_sent', sent.append, qos.ALERT_SENT)
    probe.create_subscription(Clip, 'v2x/clip', clips.append, qos.CLIP)
    out = probe.create_publisher(Alert, 'v2x/alert_out', qos.ALERT_OUT)
    assert ros.spin_until(lambda: out.get_subscription_count() > 0, 20)
    for i in range(3):
        out.publish(_collision(now - 30 + 5 * i))
    assert ros.spin_until(lambda: len(sent) == 3, 20)  # sent: nobody clips them yet
    origin = gateway.identity.origin
    assert {m.origin for m in sent} == {origin} and origin != 0
    key = make_key(tmp_path / 'keys')
    first = _clipper(ros, rec, tmp_path, evidence_key_file=key)
    assert ros.spin_until(lambda: len(clips) == 3, 40), [c.clip_id for c in clips]
    _stop(ros, first)
    assert len(_mp4s(tmp_path)) == 3
    second = _clipper(ros, rec, tmp_path, evidence_key_file=key)
    assert ros.spin_until(lambda: second.counts['already_clipped'] == 3, 20)
    # the same event id from the same source under a new origin: a new event
    again = probe.create_publisher(Alert, 'v2x/alert_sent', qos.ALERT_SENT_WRITER)
    renewed = sent[0]
    renewed.origin = origin ^ 1
    fill_stamp(renewed.detection_time, now - 14)
    assert ros.spin_until(lambda: again.get_subscription_count() > 0, 20)
    again.publish(renewed)
    assert ros.spin_until(lambda: len(clips) == 4, 30)
    ros.spin_for(1.0)
    assert len(clips) == 4 and len(_mp4s(tmp_path)) == 4
    state = second.log.refresh()
    assert sorted(k.split('|')[2] for k in state.events) == ['1', '1', '2', '3']
    assert v2x_verify_evidence.main([str(tmp_path / 'archive')], out=io.StringIO()) == 0


def test_held_evidence_outlives_the_cap_and_exceeding_it_is_an_error(
        ros, tmp_path, footage, tools, make_key, alert_request):
    """Held clips are never deleted: the unheld go first, each a log record; a new clip is
    still cut and kept; held evidence over the cap is an ERROR naming the holds."""
    rec = os.path.dirname(footage[0])
    start = int(os.path.basename(footage[0])[4:-4])
    key = make_key(tmp_path / 'keys')
    arch = str(tmp_path / 'archive')
    log = evidence_log.EvidenceLog(arch, evidence_log.load_evidence_key(key), 'rsu')
    stems = []
    for i in range(3):  # oldest first
        result = cut_clip(alert_request(i + 1, start + 2 + i), rec, arch, tools, log=log)
        stems.append(os.path.basename(result.sidecar_path)[:-5])
        for ext in ('.mp4', '.json', '.sig'):
            os.utime(os.path.join(arch, stems[-1] + ext), (1000 + i, 1000 + i))
    for stem in (stems[0], stems[2]):
        v2x_hold_evidence.set_hold(log, stem, True, 'token', 'court order')
    node = _clipper(ros, rec, tmp_path, evidence_key_file=key, archive_max_count=1,
                    archive_alert_max_age_s=500.0)  # even the age limit spares held clips
    assert ros.spin_until(lambda: node.counts['archive_deleted'] == 1, 20)
    # the other writers on this machine (the console's holds) sign with the node's key
    assert evidence_log.open_archive_log(arch).key_id == node.log.key_id != ''
    assert not os.path.exists(os.path.join(arch, stems[1] + '.mp4'))
    level, message, values = node._health()
    assert level == ERROR and '2 held clip(s)' in message and 'archive_max_count' in message
    assert values['held'] == 2
    probe = ros.node('probe')
    published = []
    probe.create_subscription(Clip, 'v2x/clip', published.append, qos.CLIP)
    assert node.add(alert_request(9, start + 3))[0]
    assert ros.spin_until(lambda: published, 20)  # retention ran before it was published
    assert published[0].error == '' and os.path.exists(published[0].path)  # still cut
    for stem in (stems[0], stems[2]):
        assert os.path.exists(os.path.join(arch, stem + '.mp4'))
    level, message, _ = node._health()
    assert node.counts['archive_deleted'] == 1 and level == ERROR
    assert message.startswith('archive holds 3 clips, over archive_max_count 1')
    deletions = [c.deleted for c in node.log.refresh().clips.values() if c.deleted]
    assert [(d['type'], d['stem'], d['reason']) for d in deletions] == [
        (evidence.DELETE, stems[1], 'age')]

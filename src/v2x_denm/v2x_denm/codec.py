"""Our alert as an ETSI DENM (EN 302 637-3 v1.3.1, "DENM v2"), both ways; pure, no I/O.

The ASN.1 is pycrate's compiled DENM-PDU-Descriptions v2 with ITS-Container v2
(``pycrate_asn1dir.ITS_DENM_3``, i.e. TS 102 894-2 v1.3.1); nothing here is hand-written
ASN.1. Three steps each way, each usable alone::

    AlertData --alert_to_denm(station)--> DENM value (dict) --encode_uper--> bytes
    bytes --decode_uper--> DENM value (dict) --denm_to_alert--> DecodedDenm(alert, ...)

docs/denm.md is the mapping table (kind <-> causeCode, severity/confidence <->
informationQuality, times as TimestampIts with leap seconds, ...) and lists what is lossy.
Errors: InvalidAlert is local misuse (a field that a DENM cannot carry; ``field`` names
it); MalformedDenm is the remote peer's fault (bytes that are no DENM v2 we accept).
"""

import bisect
from dataclasses import dataclass
import hashlib
import math
import threading

from pycrate_asn1dir import ITS_DENM_3
from pycrate_asn1rt.err import ASN1Err
from pycrate_core.charpy import Charpy
from pycrate_core.utils import PycrateErr

from v2x_common import mappings
from v2x_protocol import ranges
from v2x_protocol.wire import AlertData

_DENM = ITS_DENM_3.DENM_PDU_Descriptions.DENM
_ITS = ITS_DENM_3.ITS_Container
_LOCK = threading.Lock()  # pycrate's type objects hold the value being coded

PROTOCOL_VERSION = 2      # DENM v2 = EN 302 637-3 v1.3.1 (ItsPduHeader.protocolVersion)
MESSAGE_ID_DENM = 1       # ItsPduHeader.messageID denm(1)
STATION_TYPE_RSU = 15     # StationType roadSideUnit(15)
MAX_STATION_ID = 0xFFFFFFFF
MAX_SEQUENCE = 0xFFFF     # ActionID.sequenceNumber
MAX_VALIDITY_S = 86400    # ValidityDuration
DEFAULT_VALIDITY_S = 600  # ValidityDuration DEFAULT, and our contract's validity_s = 0
SOURCE_PREFIX = 'denm:'   # received DENMs live in their own event-id space

LAT_UNAVAILABLE = 900000001
LON_UNAVAILABLE = 1800000001
MAX_TIMESTAMP_ITS = 4398046511103

# --- time: TimestampIts = ms since 2004-01-01T00:00:00 UTC, leap seconds counted ----------

#: Unix time (s) of 2004-01-01T00:00:00Z.
ITS_EPOCH_UNIX_S = 1072915200
#: Unix time (s) of each UTC midnight that followed a leap second inserted after 2004
#: (IERS Bulletin C). No leap second has been announced since 2017; add new ones here.
LEAP_SECONDS_UNIX_S = (
    1136073600,  # 2006-01-01 (after 2005-12-31T23:59:60)
    1230768000,  # 2009-01-01
    1341100800,  # 2012-07-01
    1435708800,  # 2015-07-01
    1483228800,  # 2017-01-01 (after 2016-12-31T23:59:60)
)
_LEAPS_MS = [s * 1000 for s in LEAP_SECONDS_UNIX_S]
# TimestampIts of each of those midnights (its leap second is the 1000 ms before it).
_LEAPS_ITS = [(s - ITS_EPOCH_UNIX_S) * 1000 + (i + 1) * 1000
              for i, s in enumerate(LEAP_SECONDS_UNIX_S)]


def unix_ms_to_its(unix_ms: int) -> int:
    """Unix ms (POSIX: no leap seconds) -> TimestampIts; raises ValueError before 2004."""
    its = unix_ms - ITS_EPOCH_UNIX_S * 1000 + 1000 * bisect.bisect_right(_LEAPS_MS, unix_ms)
    if not 0 <= its <= MAX_TIMESTAMP_ITS:
        raise ValueError(f'{unix_ms} ms is outside TimestampIts (2004-01-01 .. +139 years)')
    return its


def its_to_unix_ms(its: int) -> int:
    """TimestampIts -> Unix ms; a time inside a leap second maps to the midnight after it."""
    n = bisect.bisect_right(_LEAPS_ITS, its)  # leap seconds fully before its
    unix_ms = its + ITS_EPOCH_UNIX_S * 1000 - 1000 * n
    if n < len(_LEAPS_ITS) and its >= _LEAPS_ITS[n] - 1000:  # 23:59:60.xxx
        return _LEAPS_MS[n]
    return unix_ms


# --- the mapping tables (docs/denm.md shows them) ----------------------------------------

#: Our kind -> (causeCode, subCauseCode) sent.
KIND_TO_CAUSE = {
    mappings.KIND_COLLISION: (2, 0),   # accident / unavailable
    mappings.KIND_FIRE: (18, 2),       # adverseWeatherCondition-Visibility / smoke
    mappings.KIND_BLOCKAGE: (10, 0),   # hazardousLocation-ObstacleOnTheRoad / unavailable
    mappings.KIND_UNKNOWN: (99, 0),    # dangerousSituation / unavailable
}
#: (causeCode, subCauseCode) pairs that name a kind of their own.
SUB_CAUSE_TO_KIND = {(18, 2): mappings.KIND_FIRE}
#: Every causeCode of TS 102 894-2 v1.3.1 -> our kind (codes not listed: unknown).
CAUSE_TO_KIND = {
    0: mappings.KIND_UNKNOWN,     # reserved
    1: mappings.KIND_UNKNOWN,     # trafficCondition
    2: mappings.KIND_COLLISION,   # accident
    3: mappings.KIND_UNKNOWN,     # roadworks (signposted, often no lane blocked)
    5: mappings.KIND_BLOCKAGE,    # impassability
    6: mappings.KIND_UNKNOWN,     # adverseWeatherCondition-Adhesion
    7: mappings.KIND_UNKNOWN,     # aquaplaning
    9: mappings.KIND_UNKNOWN,     # hazardousLocation-SurfaceCondition
    10: mappings.KIND_BLOCKAGE,   # hazardousLocation-ObstacleOnTheRoad
    11: mappings.KIND_BLOCKAGE,   # hazardousLocation-AnimalOnTheRoad
    12: mappings.KIND_BLOCKAGE,   # humanPresenceOnTheRoad
    14: mappings.KIND_UNKNOWN,    # wrongWayDriving
    15: mappings.KIND_UNKNOWN,    # rescueAndRecoveryWorkInProgress
    17: mappings.KIND_UNKNOWN,    # adverseWeatherCondition-ExtremeWeatherCondition
    18: mappings.KIND_UNKNOWN,    # adverseWeatherCondition-Visibility (smoke: fire, above)
    19: mappings.KIND_UNKNOWN,    # adverseWeatherCondition-Precipitation
    26: mappings.KIND_UNKNOWN,    # slowVehicle
    27: mappings.KIND_UNKNOWN,    # dangerousEndOfQueue
    91: mappings.KIND_BLOCKAGE,   # vehicleBreakdown
    92: mappings.KIND_COLLISION,  # postCrash
    93: mappings.KIND_UNKNOWN,    # humanProblem
    94: mappings.KIND_BLOCKAGE,   # stationaryVehicle
    95: mappings.KIND_UNKNOWN,    # emergencyVehicleApproaching
    96: mappings.KIND_UNKNOWN,    # hazardousLocation-DangerousCurve
    97: mappings.KIND_UNKNOWN,    # collisionRisk (a risk, not a collision)
    98: mappings.KIND_UNKNOWN,    # signalViolation
    99: mappings.KIND_UNKNOWN,    # dangerousSituation
}
#: RelevanceDistance: (upper bound in m, name); a distance d goes to the first d <= bound.
RELEVANCE_DISTANCES = ((50.0, 'lessThan50m'), (100.0, 'lessThan100m'),
                       (200.0, 'lessThan200m'), (500.0, 'lessThan500m'),
                       (1000.0, 'lessThan1000m'), (5000.0, 'lessThan5km'),
                       (10000.0, 'lessThan10km'))
OVER_10KM = 'over10km'
_DISTANCE_OF = dict((name, bound) for bound, name in RELEVANCE_DISTANCES) | {
    OVER_10KM: 10000.0}
#: informationQuality -> (severity, confidence) as decoded; see information_quality().
IQ_DECODED = {
    0: (mappings.SEVERITY_HIGH, 0.0),    # unavailable: an unreadable severity may be serious
    1: (mappings.SEVERITY_LOW, 0.25), 2: (mappings.SEVERITY_LOW, 0.75),
    3: (mappings.SEVERITY_MEDIUM, 0.25), 4: (mappings.SEVERITY_MEDIUM, 0.75),
    5: (mappings.SEVERITY_HIGH, 0.25), 6: (mappings.SEVERITY_HIGH, 0.75),
    7: (mappings.SEVERITY_HIGH, 1.0),
}


def kind_of_cause(cause: int, sub_cause: int) -> int:
    """(causeCode, subCauseCode) -> our kind; any code we do not list is 'unknown'."""
    return SUB_CAUSE_TO_KIND.get((cause, sub_cause), CAUSE_TO_KIND.get(cause,
                                                                       mappings.KIND_UNKNOWN))


def information_quality(severity: int, confidence: float) -> int:
    """Severity and confidence -> InformationQuality 1..7 (0 is never sent).

    Two levels per severity, the upper one when confidence >= 0.5:
    low 1-2, medium 3-4, high 5-6, and 7 ("highest") for high with confidence >= 0.95.
    """
    band = 1 if confidence >= 0.5 else 0
    if severity == mappings.SEVERITY_HIGH and confidence >= 0.95:
        return 7
    return 2 * severity - 1 + band


def relevance_distance(distance_m: float) -> str | None:
    """Metres -> RelevanceDistance name (None for NaN: the field is left out)."""
    if math.isnan(distance_m):
        return None
    for bound, name in RELEVANCE_DISTANCES:
        if distance_m <= bound:
            return name
    return OVER_10KM


def station_id_of(source_id: str) -> int:
    """Default numeric StationID of a source id: 'denm:N' -> N, else the first 4 bytes of
    SHA-256(source_id in UTF-8), big-endian."""
    if source_id.startswith(SOURCE_PREFIX):
        tail = source_id[len(SOURCE_PREFIX):]
        if tail.isdigit() and int(tail) <= MAX_STATION_ID:
            return int(tail)
    return int.from_bytes(hashlib.sha256(source_id.encode('utf-8')).digest()[:4], 'big')


# --- errors -------------------------------------------------------------------------------

class DenmError(Exception):
    """Base of this module's errors; `reason` is a short name for counters."""

    reason = 'invalid'


class InvalidAlert(DenmError, ValueError):
    """Local misuse: an alert field a DENM cannot carry. `field` names it."""

    reason = 'unencodable'

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f'{field}: {problem}')


class MalformedDenm(DenmError):
    """Remote fault: bytes that are not a DENM v2 this codec accepts."""

    reason = 'malformed'


# --- Alert -> DENM ------------------------------------------------------------------------

@dataclass(frozen=True)
class Station:
    """Who sends: ItsPduHeader.stationID and ManagementContainer.stationType."""

    station_id: int
    station_type: int = STATION_TYPE_RSU
    source_id: str = ''  # the alerts' source_id that means this station ('' = none)

    def __post_init__(self):
        if not 0 <= self.station_id <= MAX_STATION_ID:
            raise InvalidAlert('station_id', f'{self.station_id} outside 0..{MAX_STATION_ID}')
        if not 0 <= self.station_type <= 255:
            raise InvalidAlert('station_type', f'{self.station_type} outside 0..255')

    def originating_id(self, source_id: str) -> int:
        """ActionID.originatingStationID of an alert from source_id."""
        if not source_id or source_id == self.source_id:
            return self.station_id
        return station_id_of(source_id)


def _its_time(ns: int, field: str) -> int:
    try:
        return unix_ms_to_its(ns // 1_000_000)
    except ValueError as exc:
        raise InvalidAlert(field, str(exc)) from None


def check_alert(a: AlertData) -> None:
    """Raise InvalidAlert (naming the field) unless a DENM can carry this alert: the
    workspace's one field-range table (v2x_protocol.ranges; 0 / '' allowed, as for an
    alert still to be filled), then what DENM adds (16-bit sequence, times after 2004)."""
    try:
        ranges.check_alert_fields(a, filled=False)
    except ranges.FieldError as exc:
        prefix = f'{exc.field}: '
        text = str(exc)
        raise InvalidAlert(exc.field, text[len(prefix):] if text.startswith(prefix)
                           else text) from None
    if a.sequence > MAX_SEQUENCE:
        raise InvalidAlert('sequence', f'{a.sequence} outside 0..{MAX_SEQUENCE} '
                                       '(DENM actionID.sequenceNumber)')


def alert_to_denm(a: AlertData, station: Station) -> dict:
    """The DENM value (pycrate's dict form) of one alert version; raises InvalidAlert."""
    check_alert(a)
    originating = station.originating_id(a.source_id)
    validity = math.ceil(a.validity_s) if a.validity_s > 0 else DEFAULT_VALIDITY_S
    management = {
        'actionID': {'originatingStationID': originating, 'sequenceNumber': a.sequence},
        'detectionTime': _its_time(a.detection_time_ns, 'detection_time'),
        'referenceTime': _its_time(a.stamp_ns, 'stamp'),
        'eventPosition': {
            'latitude': (LAT_UNAVAILABLE if math.isnan(a.latitude)
                         else round(a.latitude * 1e7)),
            'longitude': (LON_UNAVAILABLE if math.isnan(a.longitude)
                          else round(a.longitude * 1e7)),
            'positionConfidenceEllipse': {'semiMajorConfidence': 4095,  # unavailable
                                          'semiMinorConfidence': 4095,
                                          'semiMajorOrientation': 3601},
            'altitude': {'altitudeValue': 800001, 'altitudeConfidence': 'unavailable'},
        },
        'stationType': station.station_type,
    }
    if validity != DEFAULT_VALIDITY_S:  # the DEFAULT is left out (pycrate logs if given)
        management['validityDuration'] = validity
    if a.cancelled:
        own = originating == station.station_id
        management['termination'] = 'isCancellation' if own else 'isNegation'
    distance = relevance_distance(a.distance_m)
    if distance is not None:
        management['relevanceDistance'] = distance
    denm = {'management': management}
    if not a.cancelled:  # EN 302 637-3: a termination DENM has the management container only
        cause, sub_cause = KIND_TO_CAUSE[a.kind]
        denm['situation'] = {
            'informationQuality': information_quality(a.severity, a.confidence),
            'eventType': {'causeCode': cause, 'subCauseCode': sub_cause},
        }
    return {'header': {'protocolVersion': PROTOCOL_VERSION, 'messageID': MESSAGE_ID_DENM,
                       'stationID': station.station_id},
            'denm': denm}


def encode_uper(value: dict) -> bytes:
    """DENM value -> UPER bytes; raises InvalidAlert when pycrate refuses a value."""
    with _LOCK:
        try:
            _DENM.set_val(value)
            return _DENM.to_uper()
        except (ASN1Err, PycrateErr, ValueError, TypeError, KeyError) as exc:
            raise InvalidAlert('denm', f'not encodable: {exc}') from None


def encode_alert(a: AlertData, station: Station) -> bytes:
    """AlertData -> UPER DENM bytes."""
    return encode_uper(alert_to_denm(a, station))


# --- DENM -> Alert ------------------------------------------------------------------------

def decode_uper(data: bytes) -> dict:
    """UPER bytes -> DENM value (dict); raises MalformedDenm, and only that.

    Every exception of pycrate's decoder is a malformed DENM: its errors are not all
    typed (a NameError escapes it on about 1 in 15,000 mutated DENMs). Bytes after a
    whole DENM (past the padding of its last octet) are refused: a DENM is the whole
    BTP payload."""
    with _LOCK:
        char = Charpy(bytes(data))
        try:
            _DENM.from_uper(char)
            value = _DENM.get_val()
        except Exception as exc:  # noqa: BLE001 -- the remote's bytes, whatever pycrate raises
            raise MalformedDenm(f'not a DENM v2 (UPER): {type(exc).__name__}: {exc}') from None
        trailing = char.len_bit() // 8
    if trailing:
        raise MalformedDenm(f'{trailing} byte(s) after the DENM ({len(data) - trailing} '
                            'bytes): a DENM is the whole BTP payload')
    header = value['header']
    if header['messageID'] != MESSAGE_ID_DENM:
        raise MalformedDenm(f"header.messageID {header['messageID']} is not denm(1)")
    if header['protocolVersion'] != PROTOCOL_VERSION:
        raise MalformedDenm(f"header.protocolVersion {header['protocolVersion']} is not "
                            f'{PROTOCOL_VERSION} (EN 302 637-3 v1.3.1)')
    return value


def to_json_value(value: dict) -> dict:
    """The DENM value with JSON-friendly leaves (BIT STRINGs as [value, bits], bytes hex)."""
    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, (bytes, bytearray)):
            return v.hex()
        return v
    return plain(value)


@dataclass(frozen=True)
class DecodedDenm:
    """A DENM as our alert, with the identifiers the alert does not hold."""

    alert: AlertData
    station_id: int               # ItsPduHeader.stationID: who sent this copy
    originating_station_id: int   # ActionID: whose event it is
    termination: str | None       # None, 'isCancellation' or 'isNegation'
    cause_code: int | None        # None when there is no situation container
    sub_cause_code: int | None
    information_quality: int | None


def denm_to_alert(value: dict) -> DecodedDenm:
    """DENM value -> our alert (source_id 'denm:<originatingStationID>'), and its ids."""
    management = value['denm']['management']
    action = management['actionID']
    situation = value['denm'].get('situation')
    if situation is None:
        kind, iq, cause, sub_cause = mappings.KIND_UNKNOWN, None, None, None
        severity, confidence = IQ_DECODED[0]
    else:
        cause = situation['eventType']['causeCode']
        sub_cause = situation['eventType']['subCauseCode']
        kind = kind_of_cause(cause, sub_cause)
        iq = situation['informationQuality']
        severity, confidence = IQ_DECODED[iq]
    position = management['eventPosition']
    lat, lon = position['latitude'], position['longitude']
    distance = management.get('relevanceDistance')
    termination = management.get('termination')
    alert = AlertData(
        source_id=f"{SOURCE_PREFIX}{action['originatingStationID']}",
        sequence=action['sequenceNumber'], kind=kind, severity=severity,
        suggest=mappings.SUGGEST_NONE,
        stamp_ns=its_to_unix_ms(management['referenceTime']) * 1_000_000,
        detection_time_ns=its_to_unix_ms(management['detectionTime']) * 1_000_000,
        validity_s=float(management.get('validityDuration', DEFAULT_VALIDITY_S)),
        cancelled=termination is not None,
        latitude=math.nan if lat == LAT_UNAVAILABLE else lat / 1e7,
        longitude=math.nan if lon == LON_UNAVAILABLE else lon / 1e7,
        distance_m=math.nan if distance is None else _DISTANCE_OF[distance],
        confidence=confidence)
    return DecodedDenm(alert, value['header']['stationID'], action['originatingStationID'],
                       termination, cause, sub_cause, iq)


def decode_alert(data: bytes) -> DecodedDenm:
    """UPER DENM bytes -> DecodedDenm; raises MalformedDenm."""
    return denm_to_alert(decode_uper(data))

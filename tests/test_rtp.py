"""RTP media: packet codec, RFC 4733 events, jitter buffer tables, and sessions on loopback UDP.

Timing assertions are loose (a loaded 2-core machine): pacing within ±30-40 %, counts ± a few.
"""

import asyncio
import itertools
import random
import time

import numpy as np
import pytest

from ivr.audio.dtmf import detect_dtmf
from ivr.audio.g711 import alaw_encode, mulaw_decode, mulaw_encode
from ivr.transports.sip.jitter import JitterBuffer
from ivr.transports.sip.rfc4733 import DtmfReceiver, build_event, build_events, parse_event
from ivr.transports.sip.rtp import PCMA, PCMU, RtpPacket, RtpSession, build_rtp, parse_rtp

HOST = "127.0.0.1"
TONE_RMS = 0.3 * 32767 / np.sqrt(2)


def run(coro, timeout_s: float = 30.0):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2))) if len(x) else 0.0


def tone(n_samples: int, rate_hz: int = 16000, freq_hz: float = 1000.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(n_samples) / rate_hz
    return np.rint(amp * 32767 * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def tone_frames(n: int) -> list[np.ndarray]:
    return list(tone(320 * n).reshape(n, 320))


# ---- packet codec ----------------------------------------------------------------------

@pytest.mark.parametrize("fields", [
    {},
    {"marker": True},
    {"csrcs": (1, 0xFFFFFFFF, 7)},
    {"extension": (0xBEDE, b"\x10\xaa\x00\x00")},
    {"padding": 4},
    {"marker": True, "csrcs": (5,), "extension": (1, b""), "padding": 255},
])
def test_build_parse_round_trip(fields: dict) -> None:
    payload = bytes(range(160))
    data = build_rtp(8, 65535, 0xFFFFFFFF, 0x12345678, payload, **fields)
    pkt = parse_rtp(data)
    assert pkt == RtpPacket(8, 65535, 0xFFFFFFFF, 0x12345678, payload, fields.get("marker", False),
                            fields.get("csrcs", ()), fields.get("extension"))


def test_build_rejects_bad_fields() -> None:
    with pytest.raises(ValueError):
        build_rtp(128, 0, 0, 0, b"")
    with pytest.raises(ValueError):
        build_rtp(0, 1 << 16, 0, 0, b"")
    with pytest.raises(ValueError):
        build_rtp(0, 0, 0, 0, b"", extension=(1, b"abc"))


GOOD = build_rtp(0, 1, 2, 3, b"\xff" * 160)


@pytest.mark.parametrize("data", [
    b"",
    GOOD[:11],                                          # short header
    bytes([0x40]) + GOOD[1:],                           # version 1
    bytes([0x00]) + GOOD[1:],                           # version 0
    bytes([0x8F]) + GOOD[1:12] + b"\x00" * 8,           # 15 CSRCs claimed, 2 present
    bytes([0x90]) + GOOD[1:12] + b"\x00\x01",           # extension header cut short
    bytes([0x90]) + GOOD[1:12] + b"\x00\x01\x00\x09" + b"\x00" * 8,   # extension longer than packet
    bytes([0xA0]) + GOOD[1:-1] + b"\x00",               # padding count 0
    bytes([0xA0]) + GOOD[1:-1] + b"\xc8",               # padding past the header
])
def test_parse_rejects_malformed(data: bytes) -> None:
    assert parse_rtp(data) is None


def test_parse_fuzz_never_raises() -> None:
    rng = random.Random(4733)
    parsed = 0
    for i in range(20_000):
        if i % 2:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        else:   # mutate a valid packet: the interesting cases are near-valid
            data = bytearray(build_rtp(0, i % 65536, i, 7, b"\x00" * rng.randrange(20), csrcs=(1,) * rng.randrange(3),
                                       extension=(1, b"\x00" * 4 * rng.randrange(3)) if i % 3 else None,
                                       padding=rng.randrange(4)))
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data[: rng.randrange(len(data) + 1)])
        pkt = parse_rtp(data)
        if pkt is not None:
            parsed += 1
            assert data[0] >> 6 == 2 and len(data) >= 12 + 4 * len(pkt.csrcs) + len(pkt.payload)
    assert parsed > 1000   # the mutated packets do exercise the accepting paths


# ---- RFC 4733 --------------------------------------------------------------------------

def test_build_events_and_parse() -> None:
    payloads = build_events("#", 100)
    events = [parse_event(p) for p in payloads]
    assert [e.key for e in events] == ["#"] * 7
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert parse_event(build_event("a", end=True, duration=5, volume=63)).key == "A"
    assert parse_event(b"\x10\x0a\x00\xa0") is None       # event 16 (flash) is not a key
    assert parse_event(b"\x01\x0a\x00") is None
    with pytest.raises(ValueError):
        build_events("x")
    with pytest.raises(ValueError):
        build_events("1", 10_000)                          # duration overflows 16 bits


def test_receiver_reports_each_event_once() -> None:
    rx = DtmfReceiver()
    first = [parse_event(p) for p in build_events("1", 60)]
    again = [parse_event(p) for p in build_events("1", 60)]
    keys = [rx.feed(1000, e) for e in first] + [rx.feed(1480, e) for e in again]
    keys += [rx.feed(1000, first[-1])]                     # a late end-packet copy
    assert [k for k in keys if k] == ["1", "1"]
    assert rx.feed(1000, first[0], ssrc=9) == "1"          # same timestamp, another stream


# ---- jitter buffer ---------------------------------------------------------------------

N = 160


def frame_of(i: int, n: int = N) -> np.ndarray:
    return np.full(n, i + 1, dtype=np.int16)              # value names the packet (1-based)


def labels(jb: JitterBuffer, n: int) -> list:
    out = []
    for _ in range(n):
        f = jb.pop()
        values = [] if f is None else sorted(set(f.tolist()))
        out.append(None if f is None else values[0] if len(values) == 1 else tuple(values))
    return out


def feed(jb: JitterBuffer, order: list[int], seq0: int = 1000, ts0: int = 50_000, ssrc: int = 1) -> list[str]:
    return [jb.put((seq0 + i) % 65536, (ts0 + i * N) % (1 << 32), frame_of(i), ssrc=ssrc) for i in order]


@pytest.mark.parametrize(("order", "expected", "stat"), [
    ([0, 1, 2, 3, 4], [None, None, 1, 2, 3, 4, 5, None], {}),
    ([0, 2, 1, 4, 3], [None, None, 1, 2, 3, 4, 5, None], {"reordered": 2}),
    ([0, 1, 1, 2, 0, 3], [None, None, 1, 2, 3, 4, None], {"duplicates": 2}),
    ([0, 1, 3, 4], [None, None, 1, 2, None, 4, 5], {"lost": 1}),
    ([0, 4], [None, None, 1, None, None, None, 5], {"lost": 3}),
])
def test_jitter_table(order: list[int], expected: list, stat: dict) -> None:
    jb = JitterBuffer(jitter_ms=40)
    feed(jb, order)
    assert labels(jb, len(expected)) == expected
    for name, value in stat.items():
        assert getattr(jb.stats, name) == value


def test_jitter_wraparound_of_seq_and_timestamp() -> None:
    jb = JitterBuffer(jitter_ms=40)
    feed(jb, [0, 2, 1, 4, 3, 5], seq0=65533, ts0=(1 << 32) - 2 * N)   # seq and ts both wrap
    assert labels(jb, 9) == [None, None, 1, 2, 3, 4, 5, 6, None]
    assert jb.stats.lost == 0 and jb.stats.reordered == 2 and jb.stats.resyncs == 0


def test_jitter_late_packet_is_dropped_and_counted() -> None:
    jb = JitterBuffer(jitter_ms=40)
    feed(jb, [0, 1, 3, 4])
    assert labels(jb, 5) == [None, None, 1, 2, None]
    assert feed(jb, [2]) == ["late"]
    assert labels(jb, 3) == [4, 5, None]
    assert jb.stats.late == 1 and jb.stats.lost == 0      # it came, too late


def test_jitter_timestamp_gap_is_silence_and_packets_without_audio_count_as_received() -> None:
    jb = JitterBuffer(jitter_ms=20)
    jb.put(1, 0, frame_of(0))
    jb.put(2, N, None)                                     # e.g. a DTMF event packet
    jb.put(3, 3 * N, frame_of(3))                          # the sender paused one frame
    assert labels(jb, 6) == [None, 1, None, None, 4, None]
    assert jb.stats.lost == 0


@pytest.mark.parametrize("ptime_ms", [10, 30])
def test_jitter_other_packet_sizes_fill_whole_frames(ptime_ms: int) -> None:
    n = 8 * ptime_ms
    jb = JitterBuffer(jitter_ms=0)
    for i in range(6):
        jb.put(i, i * n, np.full(n, 100 + i, dtype=np.int16))
    audio = np.concatenate([jb.pop() for _ in range(6 * n // N)])
    assert np.array_equal(audio, np.repeat(np.arange(100, 106, dtype=np.int16), n))


def test_jitter_new_ssrc_and_confirmed_seq_jump_resync() -> None:
    jb = JitterBuffer(jitter_ms=40)
    feed(jb, [0, 1])
    assert labels(jb, 4) == [None, None, 1, 2]
    feed(jb, [0, 1], seq0=7, ts0=999_999, ssrc=2)           # a new source: starts over
    assert labels(jb, 4) == [None, None, 1, 2]
    assert feed(jb, [0], seq0=40_000, ts0=5, ssrc=2) == ["probation"]   # one packet far away: wait
    assert feed(jb, [1], seq0=40_000, ts0=5, ssrc=2) == ["ok"]          # a second confirms it
    assert labels(jb, 4) == [None, None, 1, 2]
    assert jb.stats.resyncs == 2 and jb.stats.lost == 0


def test_jitter_reanchors_on_a_talkspurt_that_comes_early() -> None:
    jb = JitterBuffer(jitter_ms=40)
    feed(jb, [0])
    assert labels(jb, 3) == [None, None, 1]
    labels(jb, 10)                                         # the peer is silent (no packets)
    # Next talkspurt: its clock ran 300 ms ahead of ours. Marker: re-anchor, play after 40 ms.
    jb.put(1001, 50_000 + 60 * N, frame_of(7), ssrc=1, marker=True)
    assert labels(jb, 3) == [None, None, 8]


def simulate(jb: JitterBuffer, arrivals_ms: list[float], ticks: int, level: int = 0) -> tuple[list, list]:
    """Packet i (ts i*N, samples `level`) arrives at arrivals_ms[i]; the playout clock pops every
    20 ms. Returns the packet numbers played (None for silence) and the depth after each pop."""
    events = sorted((t, i) for i, t in enumerate(arrivals_ms))
    played, depths, k = [], [], 0
    for tick in range(ticks):
        while k < len(events) and events[k][0] <= tick * 20:
            i = events[k][1]
            samples = np.full(N, level, dtype=np.int16)
            samples[0] = level + i                               # the packet's number, in sample 0
            jb.put(i % 65536, i * N, samples, ssrc=1)
            k += 1
        f = jb.pop()
        played.append(None if f is None else int(f[0]) - level)
        depths.append(jb.depth)
    return played, depths


def test_jitter_absorbs_network_jitter_within_its_depth() -> None:
    rng = random.Random(1)
    arrivals = [i * 20 + rng.uniform(0, 50) for i in range(200)]    # up to 50 ms of jitter
    jb = JitterBuffer(jitter_ms=60)
    played, _ = simulate(jb, arrivals, 215)
    assert [i for i in played if i is not None] == list(range(200))
    assert jb.stats.late == 0 and jb.stats.lost == 0


def test_jitter_waits_out_a_delay_spike_then_drops_only_quiet_frames() -> None:
    arrivals = [i * 20 if i < 50 else max(i * 20, 1200) for i in range(300)]   # the network stalls 200 ms
    jb = JitterBuffer(jitter_ms=60)
    played, depths = simulate(jb, arrivals, 200, level=1000)                   # loud: nothing may be dropped
    assert [i for i in played if i is not None] == list(range(len([i for i in played if i is not None])))
    assert jb.stats.late == 0 and jb.stats.skipped_frames == 0 and depths[-1] > jb.high_water
    # The talker pauses (quiet packets) while the buffer is still too deep: those frames go.
    jb = JitterBuffer(jitter_ms=60)
    played, depths = simulate(jb, arrivals, 300, level=0)
    kept = [i for i in played if i is not None]
    assert kept == sorted(kept) and jb.stats.skipped_frames >= 5 and depths[-1] <= jb.high_water


def test_jitter_stretches_for_a_slow_sender_clock() -> None:
    jb = JitterBuffer(jitter_ms=60)
    arrivals = [i * 20 / 0.98 for i in range(1500)]              # 30 s of packets, clock 2 % slow
    played, _ = simulate(jb, arrivals, 1540, level=1000)
    assert [i for i in played if i is not None] == list(range(1500)) and jb.stats.late == 0


def test_jitter_skips_for_a_fast_sender_clock() -> None:
    jb = JitterBuffer(jitter_ms=60)
    arrivals = [i * 20 / 1.02 for i in range(1500)]              # clock 2 % fast: the buffer would grow
    played, depths = simulate(jb, arrivals, 1480)                # quiet audio: skippable
    kept = [i for i in played if i is not None]
    assert kept == sorted(kept) and len(kept) > 1400
    assert jb.stats.skipped_frames > 0 and max(depths) <= jb.high_water + 2 * N


# ---- sessions on loopback --------------------------------------------------------------

class Peer(asyncio.DatagramProtocol):
    """A plain UDP socket: records what arrives, sends what a test builds."""

    def __init__(self) -> None:
        self.got: list[tuple[float, RtpPacket]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        pkt = parse_rtp(data)
        assert pkt is not None
        self.got.append((time.monotonic(), pkt))

    @property
    def port(self) -> int:
        return self.transport.get_extra_info("sockname")[1]

    def voiced(self, threshold: float = TONE_RMS / 2) -> list[int]:
        return [i for i, (_, p) in enumerate(self.got)
                if p.payload_type == 0 and rms(mulaw_decode(p.payload)) > threshold]


async def peer() -> Peer:
    _, proto = await asyncio.get_running_loop().create_datagram_endpoint(Peer, local_addr=(HOST, 0))
    return proto


async def collect(session: RtpSession, into: list) -> None:
    async for item in session.inbound():
        into.append(item)


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_tone_arrives_with_its_frequency_and_level(codec) -> None:
    async def body():
        a = RtpSession(codec=codec, call_id="a")
        b = RtpSession(codec=codec, jitter_ms=100, call_id="b")
        a.set_remote(HOST, await b.open())
        b.set_remote(HOST, await a.open())
        got: list = []
        reader = asyncio.create_task(collect(b, got))
        await asyncio.sleep(0.1)
        for frame in tone_frames(50):
            await a.send(frame)
        await asyncio.sleep(1.6)
        await b.close()
        await a.close()
        await reader
        return got, b.stats
    got, stats = run(body())
    assert all(f.dtype == np.int16 and f.shape == (320,) for f in got)
    voiced = [i for i, f in enumerate(got) if rms(f) > TONE_RMS / 2]
    assert 49 <= len(voiced) <= 51 and voiced[-1] - voiced[0] == len(voiced) - 1    # continuous, nothing lost
    audio = np.concatenate(got[voiced[0] + 2 : voiced[-1] - 1])
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    assert abs(np.argmax(spectrum) * 16000 / len(audio) - 1000) < 5
    assert abs(20 * np.log10(rms(audio) / TONE_RMS)) < 0.5                         # G.711 + resampling
    assert stats["lost"] == 0 and stats["packets_in"] > 60 and stats["bad_packets"] == 0


def test_sender_paces_with_correct_headers_and_markers() -> None:
    async def body():
        p = await peer()
        a = RtpSession()
        await a.open()
        a.set_remote(HOST, p.port)
        await asyncio.sleep(0.2)                           # silence flows while nothing is queued
        for frame in tone_frames(50):
            await a.send(frame)
        await asyncio.sleep(1.4)
        await a.close()
        return p
    p = run(body())
    pkts = [pkt for _, pkt in p.got]
    assert all(pkt.payload_type == 0 and len(pkt.payload) == 160 for pkt in pkts)
    assert len({pkt.ssrc for pkt in pkts}) == 1
    assert all((b.seq - a.seq) % 65536 == 1 for a, b in itertools.pairwise(pkts))
    assert all((b.timestamp - a.timestamp) % (1 << 32) == 160 for a, b in itertools.pairwise(pkts))
    voiced = p.voiced()
    assert 49 <= len(voiced) <= 51
    # Paced, not sent as one burst (a late pacer may catch up a little, never by half the tone).
    elapsed_s = p.got[voiced[-1]][0] - p.got[voiced[0]][0]
    assert elapsed_s > 0.98 * 0.5
    marked = [i for i, pkt in enumerate(pkts) if pkt.marker]
    assert marked[0] == 0 and len(marked) == 2 and abs(marked[1] - voiced[0]) <= 1   # stream start, talkspurt


def test_silence_is_dropped_only_when_frames_are_queued() -> None:
    async def body():
        p = await peer()
        a = RtpSession()
        await a.open()
        a.set_remote(HOST, p.port)
        await asyncio.sleep(0.1)
        # No await inside send() suspends, so the sender cannot run during these bursts.
        for _ in range(10):
            await a.send(np.zeros(320, np.int16))
        after_silence = a.stats
        for frame in tone_frames(10):
            await a.send(frame)
        for _ in range(5):
            await a.send(np.zeros(320, np.int16))
        after_burst = a.stats
        await asyncio.sleep(0.6)
        await a.close()
        return p, after_silence, after_burst
    p, after_silence, after_burst = run(body())
    assert after_silence["queued_frames"] == 3 and after_silence["dropped_silence"] == 7
    assert after_burst["queued_frames"] == 13 and after_burst["dropped_silence"] == 12
    assert 9 <= len(p.voiced()) <= 11                                              # every voiced frame went out


def test_clear_drops_queued_audio() -> None:
    async def body():
        p = await peer()
        a = RtpSession()
        await a.open()
        a.set_remote(HOST, p.port)
        for frame in tone_frames(100):
            await a.send(frame)
        await asyncio.sleep(0.3)
        await a.clear()
        stats = a.stats
        await asyncio.sleep(0.3)
        await a.close()
        return p, stats
    p, stats = run(body())
    voiced = p.voiced()
    assert 5 <= len(voiced) <= 40 and stats["cleared"] >= 60 and stats["queued_frames"] == 0
    assert voiced[-1] < len(p.got) - 5                                             # silence after the clear


def test_send_rejects_a_wrong_frame() -> None:
    async def body():
        a = RtpSession()
        with pytest.raises(ValueError):
            await a.send(np.zeros(160, np.int16))
        with pytest.raises(ValueError):
            await a.send(np.zeros(320, np.float32))
    run(body())


def test_dtmf_keys_arrive_once_each_in_order() -> None:
    async def body():
        a, b = RtpSession(call_id="a"), RtpSession(call_id="b")
        a.set_remote(HOST, await b.open())
        b.set_remote(HOST, await a.open())
        got: list = []
        reader = asyncio.create_task(collect(b, got))
        for key in "12#1D":
            await a.send_dtmf(key, duration_ms=60)
        await asyncio.sleep(0.3)
        await b.close()
        await a.close()
        await reader
        return got, a.stats
    got, stats = run(body())
    assert [k for k in got if isinstance(k, str)] == list("12#1D")
    frames = [f for f in got if not isinstance(f, str)]
    assert len(frames) >= 5 * 60 // 20            # audio clock kept ticking through the five 60 ms key presses
    assert stats["dtmf_out"] == 5


def test_wrong_source_and_garbage_are_dropped_and_counted() -> None:
    async def body():
        right, wrong = await peer(), await peer()
        b = RtpSession(inactivity_timeout_ms=5000)
        port = await b.open()
        b.set_remote(HOST, right.port)
        got: list = []
        reader = asyncio.create_task(collect(b, got))
        loud = mulaw_encode(tone(160, 8000))
        for i in range(20):
            wrong.transport.sendto(build_rtp(0, i, i * 160, 5, loud), (HOST, port))
            right.transport.sendto(b"\x00garbage" * (i + 1), (HOST, port))
            right.transport.sendto(build_rtp(0, i, i * 160, 6, mulaw_encode(np.zeros(160, np.int16))), (HOST, port))
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        await b.close()
        await reader
        return got, b.stats
    got, stats = run(body())
    assert stats["wrong_source"] == 20 and stats["bad_packets"] == 20 and stats["packets_in"] == 20
    assert max(int(np.abs(f).max()) for f in got) == 0                             # none of the loud tone


def test_inactivity_timeout_ends_inbound() -> None:
    async def body():
        b = RtpSession(inactivity_timeout_ms=300)
        await b.open()
        b.set_remote(HOST, 9)               # the discard port: nobody will answer
        got: list = []
        started = time.monotonic()
        await collect(b, got)
        elapsed_s = time.monotonic() - started
        await b.close()
        return got, elapsed_s
    got, elapsed_s = run(body())
    assert elapsed_s > 0.25 and len(got) >= 8     # not before the timeout; ended at all (run() bounds the wait)


def test_packets_keep_inbound_alive_then_close_ends_it() -> None:
    async def body():
        p = await peer()
        b = RtpSession(inactivity_timeout_ms=200)
        port = await b.open()
        b.set_remote(HOST, p.port)
        got: list = []
        reader = asyncio.create_task(collect(b, got))
        for i in range(30):                 # 600 ms of packets: longer than the timeout
            p.transport.sendto(build_rtp(0, i, i * 160, 1, b"\xff" * 160), (HOST, port))
            await asyncio.sleep(0.02)
        assert not reader.done()
        await b.close()
        await asyncio.wait_for(reader, 10)       # close ends inbound (a hang fails here, not a speed limit)
        return got
    got = run(body())
    assert len(got) >= 20


def test_hold_sends_nothing_and_resumes_with_marker() -> None:
    async def body():
        p = await peer()
        a = RtpSession()
        await a.open()
        a.set_remote(HOST, p.port)
        await asyncio.sleep(0.2)
        a.hold(True)
        n_before = len(p.got)
        await asyncio.sleep(0.4)
        n_held = len(p.got) - n_before
        a.hold(False)
        await asyncio.sleep(0.2)
        await a.close()
        return p, n_before, n_held
    p, n_before, n_held = run(body())
    assert n_held <= 1
    before, after = p.got[n_before - 1 + n_held][1], p.got[n_before + n_held][1]
    assert after.marker and (after.seq - before.seq) % 65536 == 1
    assert 0.25 * 8000 < (after.timestamp - before.timestamp) % (1 << 32) < 30 * 8000   # time went on


def test_reordered_packets_play_in_order() -> None:
    async def body():
        p = await peer()
        b = RtpSession(jitter_ms=200)
        port = await b.open()
        b.set_remote(HOST, p.port)
        got: list = []
        reader = asyncio.create_task(collect(b, got))
        line = tone(160 * 30, 8000)
        order = [i ^ 1 for i in range(30)]   # swap every pair
        for k, i in enumerate(order):
            p.transport.sendto(build_rtp(8, 500 + i, i * 160, 3, alaw_encode(line[i * 160 : (i + 1) * 160])),
                               (HOST, port))
            if k % 2:
                await asyncio.sleep(0.04)
        await asyncio.sleep(0.5)
        await b.close()
        await reader
        return got, b.stats
    got, stats = run(body())
    voiced = [i for i, f in enumerate(got) if rms(f) > TONE_RMS / 2]
    assert len(voiced) >= 29 and voiced[-1] - voiced[0] == len(voiced) - 1
    assert stats["reordered"] == 15 and stats["lost"] == 0 and stats["late"] == 0



def test_dtmf_without_telephone_event_goes_in_band() -> None:
    async def body():
        a, b = RtpSession(dtmf_pt=None), RtpSession(dtmf_pt=None)
        a.set_remote(HOST, await b.open())
        b.set_remote(HOST, await a.open())
        got: list = []
        reader = asyncio.create_task(collect(b, got))
        await a.send_dtmf("7")
        await a.send_dtmf("*")
        await asyncio.sleep(0.6)
        await b.close()
        await a.close()
        await reader
        return got
    got = run(body())
    assert not any(isinstance(k, str) for k in got)
    assert detect_dtmf(np.concatenate(got)) == "7*"          # the call loop's detector hears them


def test_set_codec_changes_what_is_sent_and_bad_use_is_refused() -> None:
    async def body():
        p = await peer()
        a = RtpSession()
        with pytest.raises(RuntimeError):
            await a.send_dtmf("1")                         # before open()
        await a.open()
        a.set_remote(HOST, p.port)
        with pytest.raises(ValueError):
            a.set_codec(PCMU.__class__("G722", 9), None)
        a.set_codec(PCMA, 96)
        await asyncio.sleep(0.1)
        await a.send_dtmf("9", duration_ms=40)
        await asyncio.sleep(0.1)
        await a.close()
        return p
    p = run(body())
    pts = [pkt.payload_type for _, pkt in p.got]
    assert set(pts) == {8, 96} and pts.count(96) == 4        # one update, then the end packet 3 times
    packets = [pkt for _, pkt in p.got if pkt.payload_type == 96]
    events = [parse_event(pkt.payload) for pkt in packets]
    assert [e.key for e in events] == ["9"] * 4 and [e.end for e in events] == [False, True, True, True]
    assert [pkt.marker for pkt in packets] == [True, False, False, False]
    assert len({pkt.timestamp for _, pkt in p.got if pkt.payload_type == 96}) == 1


def test_every_session_sends_from_the_port_it_reports() -> None:
    class Sources(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.ports: set[int] = set()

        def datagram_received(self, data: bytes, addr) -> None:
            self.ports.add(addr[1])

    async def body():
        transport, sources = await asyncio.get_running_loop().create_datagram_endpoint(
            Sources, local_addr=(HOST, 0))
        sessions = [RtpSession() for _ in range(40)]
        ports = [await s.open() for s in sessions]
        for s in sessions:
            s.set_remote(HOST, transport.get_extra_info("sockname")[1])
        await asyncio.sleep(0.2)
        for s in sessions:
            await s.close()
        transport.close()
        return ports, sources.ports
    ports, seen = run(body())
    assert seen == set(ports)
    assert sum(p % 2 == 0 for p in ports) >= 38                   # even ports, as RTP prefers

"""End to end with a real SIP phone: baresip calls the demo flow (whisper + piper) over 127.0.0.1.

The caller speaks from a WAV (piper speech through an 8 kHz mu-law line), presses a key
(RFC 4733), and we check the call's trace and what baresip heard (transcribed with whisper).

Driving baresip 1.0.0 (the Debian build) headless, as learned here:
- `baresip -f DIR` reads DIR/config and DIR/accounts. The accounts file is only loaded by the
  `account.so` module; without it `dial` fails with "Invalid argument". `<sip:tester@127.0.0.1>;regint=0`
  is an account that never registers.
- `net_interface 127.0.0.1` is needed: otherwise baresip puts the machine's first interface
  address in its SDP `c=` and the IVR (rightly) ignores RTP from 127.0.0.1 as a wrong source.
- `sip_listen 127.0.0.1:P` also binds TLS on P+1, so both must be free.
- Control: `ctrl_tcp.so` with `ctrl_tcp_listen`: netstrings of JSON, e.g.
  `{"command": "dial", "params": "sip:ivr@127.0.0.1:5060", "token": "1"}`; events come back the
  same way (CALL_RINGING, CALL_ESTABLISHED, CALL_CLOSED with the reason in "param").
  `sndcode` (send a DTMF key as RFC 4733) exists only while a call is up: the menu module
  registers its in-call commands when a call starts.
- Digest auth: an account `<sip:alice@127.0.0.1>;auth_pass=PW;regint=0` answers a 401 challenge.
- REFER (1.0.0): baresip accepts it (202), sends NOTIFY sipfrag 100, then dials the Refer-To URI
  itself. It un-escapes the whole Refer-To value once, cuts it at whitespace, fails on long URIs
  (~600 chars) and drops URI headers from its INVITE. With our escaped context headers the
  transfer fails (NOTIFY "500 Call Error"): exactly the case `transfer_mode: auto` covers by
  dialling the agent line itself and bridging.
- `audio_source aufile,IN.wav` plays an 8 kHz mono S16LE WAV once; at its end baresip raises
  AUDIO_ERROR "end of file" and hangs up. So the WAV's length bounds the call.
- In 1.0 aufile is a source only. To record what the phone hears, load the `sndfile.so`
  filter: it writes `dump-<time>-dec.wav` (received, decoded) and `-enc.wav` (sent) into
  `snd_path`. Some player must still open: `audio_player alsa,null` does.
"""

import asyncio
import contextlib
import json
import random
import shutil
import socket

import numpy as np
import pytest
import soundfile as sf

from ivr.audio.resample import resample
from ivr.call import Call, CallConfig
from ivr.callgen import LINE_RATE_HZ, render
from ivr.flow.interpreter import Interpreter
from ivr.transports.sip.message import make_response
from ivr.transports.sip.refer import decode_context
from ivr.transports.sip.server import SipServer

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip is not installed")]
HOST = "127.0.0.1"
PASSWORD = "s3cret-for-tests"
# Greeting + menu last ~6.5 s. After "track my order" the reply and the next question run to
# ~16 s; the key 9 (main menu) is pressed as soon as that step listens; "goodbye" then
# comes over the menu prompt (barge-in) and the flow says goodbye and hangs up.
CALLER = [("pause", 7500), ("say", "track my order"), ("pause", 11000), ("say", "goodbye"), ("pause", 9000)]


def free_port(consecutive: int = 1) -> int:
    for _ in range(200):
        port = random.randint(20000, 60000 - consecutive)
        try:
            for p in range(port, port + consecutive):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    with socket.socket(socket.AF_INET, kind) as s:
                        s.bind((HOST, p))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port on 127.0.0.1")


def write_config(folder, wav_in, records, sip_port: int, ctrl_port: int, rtp_base: int,
                 account: str = f"<sip:alice@{HOST}>;auth_pass={PASSWORD};regint=0") -> None:
    (folder / "config").write_text(f"""poll_method epoll
sip_listen {HOST}:{sip_port}
net_interface {HOST}
rtp_ports {rtp_base}-{rtp_base + 40}
audio_source aufile,{wav_in}
audio_player alsa,null
audio_alert alsa,null
module_path /usr/lib/baresip/modules
module g711.so
module aufile.so
module alsa.so
module sndfile.so
snd_path {records}
module_app account.so
module_app menu.so
module_app ctrl_tcp.so
ctrl_tcp_listen {HOST}:{ctrl_port}
""")
    (folder / "accounts").write_text(account + "\n")


class Baresip:
    """baresip as a subprocess, driven through ctrl_tcp."""

    def __init__(self, folder, ctrl_port: int) -> None:
        self.folder, self.ctrl_port = folder, ctrl_port
        self.events: list[dict] = []
        self.output: list[str] = []
        self.changed = asyncio.Event()

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "baresip", "-f", str(self.folder), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        self._out = asyncio.create_task(self._read_output())
        for _ in range(100):
            try:
                self.reader, self.writer = await asyncio.open_connection(HOST, self.ctrl_port)
                break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            raise RuntimeError("baresip's ctrl_tcp did not come up:\n" + "\n".join(self.output[-30:]))
        self._ctrl = asyncio.create_task(self._read_ctrl())

    async def _read_output(self) -> None:
        async for line in self.proc.stdout:
            self.output.append(line.decode(errors="replace").rstrip())

    async def _read_ctrl(self) -> None:
        buf = b""
        while data := await self.reader.read(4096):
            buf += data
            while b":" in buf:
                length, _, rest = buf.partition(b":")
                if len(rest) < int(length) + 1:
                    break
                self.events.append(json.loads(rest[: int(length)]))
                buf = rest[int(length) + 1 :]
                self.changed.set()

    def command(self, command: str, params: str = "") -> None:
        data = json.dumps({"command": command, "params": params, "token": command}).encode()
        self.writer.write(b"%d:%s," % (len(data), data))

    async def wait_event(self, kind: str, timeout_s: float) -> dict:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while True:
            found = [e for e in self.events if e.get("type") == kind]
            if found:
                return found[0]
            self.changed.clear()
            if loop.time() >= end:
                raise TimeoutError(f"baresip: no {kind}; events {[e.get('type') for e in self.events]}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), end - loop.time())

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        for task in (self._out, getattr(self, "_ctrl", None)):
            if task:
                task.cancel()


class DemoService:
    """The handler `ivr serve` would run: the demo flow on the shared engines, one Call per SIP call."""

    def __init__(self, flow, asr, prompts) -> None:
        self.flow, self.asr, self.prompts = flow, asr, prompts
        self.calls: list[Call] = []
        self.traces: list = []
        self.in_use = 0

    def admit(self, info) -> bool:
        self.in_use += 1
        return True

    def release(self, info) -> None:
        self.in_use -= 1

    async def __call__(self, transport, info) -> None:
        try:
            call = Call(info.call_id, Interpreter(self.flow), self.asr, self.prompts, transport,
                        CallConfig(live=True), caller=info.caller, called=info.called, tts_name="piper")
            self.calls.append(call)
            self.traces.append(await call.run())
        finally:
            self.release(info)


async def until(predicate, timeout_s: float, what: str) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(what)


def test_baresip_calls_the_demo_flow(tmp_path, demo_flow, whisper_asr, prompt_cache, piper):
    prompt_cache.warm(["Thanks for calling ACME.", "Your order shipped yesterday and arrives on Friday.",
                       "Is there anything else? Say main menu, or goodbye.", "Thanks for calling. Goodbye.",
                       "You can say track an order, opening hours, or agent. Or press 1, 2 or 0."])
    wav_in, records = tmp_path / "caller.wav", tmp_path / "records"
    records.mkdir()
    sf.write(str(wav_in), render(CALLER, piper), LINE_RATE_HZ, subtype="PCM_16")
    sip_port, ctrl_port, rtp_base = free_port(2), free_port(), free_port(41)
    write_config(tmp_path, wav_in, records, sip_port, ctrl_port, rtp_base)
    service = DemoService(demo_flow, whisper_asr, prompt_cache)

    async def go():
        server = SipServer(HOST, 0, handler=service, admission=service, auth={"alice": PASSWORD})
        _, port = await server.start()
        phone = Baresip(tmp_path, ctrl_port)
        try:
            await phone.start()
            phone.command("dial", f"sip:ivr@{HOST}:{port}")
            await phone.wait_event("CALL_ESTABLISHED", 5)
            await until(lambda: service.calls, 5, "the call loop did not start")
            call = service.calls[0]
            await until(lambda: list(call.state.path[-1:]) == ["anything_else"] and call.listening, 25,
                        "the flow never listened at anything_else")
            phone.command("sndcode", "9")
            closed = await phone.wait_event("CALL_CLOSED", 30)
            await until(lambda: service.traces, 5, "the call loop did not finish")
            await until(lambda: server.active_calls == 0, 5, "the SIP call did not end")
            return closed, dict(server.endpoint.stats)
        finally:
            await phone.stop()
            await server.stop(1)

    closed, _ = asyncio.run(asyncio.wait_for(go(), 90))
    trace = service.traces[0].to_dict()
    turns = [(t["kind"], t["step"], (t["match"] or {}).get("choice")) for t in trace["turns"]]
    assert turns == [("start", None, None), ("speech", "main", "track"), ("dtmf", "anything_else", "menu"),
                     ("speech", "main", "goodbye")], trace["turns"]
    assert "track" in trace["turns"][1]["heard"].lower() and trace["turns"][2]["heard"] == "9"
    assert trace["path"] == ["greet", "main", "track", "anything_else", "main", "bye"]
    assert trace["outcome"]["kind"] == "hangup"
    assert closed["param"] != "end of file"          # the IVR hung up, not the end of the caller's WAV
    assert service.calls[0].caller == "alice"          # answered after the digest challenge
    assert service.in_use == 0

    heard_files = sorted(records.glob("*-dec.wav"))
    assert heard_files, "baresip recorded nothing"
    heard, rate = sf.read(str(heard_files[0]), dtype="int16")
    words = whisper_asr.transcribe(resample(heard, rate, 16000)).text.lower()
    for expected in ("thanks for calling", "order", "friday", "anything else", "goodbye"):
        assert expected in words, words
    assert np.abs(heard.astype(np.int32)).max() > 3000   # real speech levels, not a whisper of noise


def test_baresip_refer_falls_back_to_a_bridge(tmp_path, piper):
    """A real transferee: REFER first, and when that fails the IVR dials the agent line and bridges."""
    from tests.test_sip_server import AgentLine, Handler, Peer, Rtp, Slots, rtp_port_of, transfer_on_key

    wav_in, records = tmp_path / "caller.wav", tmp_path / "records"
    records.mkdir()
    sf.write(str(wav_in), render([("pause", 1500), ("say", "hello, is anybody there"), ("pause", 4000)], piper),
             LINE_RATE_HZ, subtype="PCM_16")
    sip_port, ctrl_port, rtp_base = free_port(2), free_port(), free_port(41)
    write_config(tmp_path, wav_in, records, sip_port, ctrl_port, rtp_base, account=f"<sip:bob@{HOST}>;regint=0")

    async def go():
        agent = AgentLine(await Peer.open(), await Rtp.open())
        errors: list = []
        slots = Slots()
        handler = Handler(slots, await transfer_on_key(f"sip:agents@{HOST}:{agent.peer.port}", errors))
        server = SipServer(HOST, 0, handler=handler, admission=slots, transfer_mode="auto")
        _, port = await server.start()
        phone = Baresip(tmp_path, ctrl_port)
        try:
            await phone.start()
            phone.command("dial", f"sip:ivr@{HOST}:{port}")
            await phone.wait_event("CALL_ESTABLISHED", 5)
            await asyncio.sleep(0.5)
            phone.command("sndcode", "0")                 # the handler transfers on any key
            invite = await agent.answer_one()
            bridged_by_us = invite.get("x-ivr-context") is not None
            if bridged_by_us:                            # our own call: caller audio must reach the agent
                await agent.rtp.send_tone((HOST, rtp_port_of(invite)), frames=50, hz=600)
            await phone.wait_event("CALL_CLOSED", 15)    # the WAV ends; baresip hangs up; we BYE the agent
            bye = await agent.peer.request("BYE", timeout_s=5) if bridged_by_us else None
            if bye is not None:
                agent.peer.send(make_response(bye, 200), agent.peer.last_addr)
            await until(lambda: server.active_calls == 0, 5, "calls did not end")
            return invite, bridged_by_us, agent.rtp.loud_packets(pt=8), errors, bye
        finally:
            await phone.stop()
            await server.stop(1)
            agent.peer.close()
            agent.rtp.close()

    invite, bridged, loud_to_agent, errors, bye = asyncio.run(asyncio.wait_for(go(), 60))
    assert errors == []                                    # one of the two ways reached the agent line
    if bridged:
        assert decode_context(invite.get("x-ivr-context"))["intent"] == "agent"
        assert loud_to_agent >= 25                         # the caller's speech, relayed to the agent
        assert bye is not None

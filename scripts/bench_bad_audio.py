"""Bad input from audio: what the demo flow's menu does with music, noise, tones and speech in other languages, and
what it still does with English requests, with the guards of ivr.asr.whisper on and off.

    .venv/bin/python scripts/bench_bad_audio.py [--json build/bench/bad_audio.json]

Each clip (300 ms of silence either side, through the 8 kHz mu-law line) is decoded as a live turn at the demo's main
menu (whisper tiny.en with the step's prompt) and handed to the flow interpreter: it takes an answer, offers one ("did
you mean"), or hears no match. The guards:
- stock words: whisper's "Thank you." / "you" for music and noise, dropped when it finds no speech fairly likely
  (whisper.STOCK_WORDS, STOCK_NO_SPEECH_PROB);
- doubt: words under a mean token probability (whisper.DOUBT_BELOW) only offer an answer not said whole;
- prompt pieces (Mandarin): words made of the step's prompt alone (whisper.ECHO_NO_SPEECH_PROB, ECHO_MIN_CHARS).
The last set is the same music at the retail flow's Mandarin menu (whisper base), where the third guard applies and
was chosen. "tuned" sets are what
the thresholds were chosen on; "held out" sets were written with this script, before its first
run (the floor for whole answers was then set after one of them: "held out 2" was written after that, run once).
English requests: piper (the neural voice) and espeak-ng's en-us (robotic). Real music on hold: Debian's
asterisk-moh-opsound-wav (five tracks, each at 5, 40 and 80 s for 4, 8 and 14 s), never used to choose anything.
"""

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from benchlib import machine_info

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ivr.asr import whisper
from ivr.asr.whisper import WhisperAsr, bundled_model_path
from ivr.audio.resample import resample
from ivr.callgen import LINE_RATE_HZ, render
from ivr.events import CallStarted, Heard, Listen
from ivr.flow.interpreter import Interpreter
from ivr.flow.loader import load_flow
from ivr.flow.state import CallState
from ivr.tts.piper import PiperTts
from tests.mandarin import PinyinEspeak
from tests.test_bad_audio import Espeak, hum, music, on_line, pink_noise

ROOT = Path(__file__).resolve().parent.parent
R = LINE_RATE_HZ

ENGLISH = {   # (request, the answer it asks for) at the demo menu: track, hours, and the globals agent, repeat, goodbye
    "track": ["track my order", "where is my order", "order status please", "where's my package it should be here",
              "i'd like to know where my parcel is", "can you tell me when my order arrives",
              "i'm calling about a delivery that hasn't shown up", "has my order shipped yet"],
    "hours": ["opening hours", "what are your opening hours", "when are you open on saturday",
              "what time do you close today", "are you open on sundays", "how late is the shop open tonight"],
    "agent": ["agent", "i want to talk to someone", "can i speak to a real person", "put me through to a human please",
              "operator"],
    "repeat": ["repeat that", "say that again please", "sorry could you repeat the options"],
    "goodbye": ["goodbye", "no thanks that's all", "bye"],
}
FOREIGN_TUNED = {   # the sentences DOUBT_BELOW was chosen on
    "fr": ["Je voudrais parler à quelqu'un de ma facture, s'il vous plaît.", "Où est ma commande?",
           "Quelles sont vos heures d'ouverture?", "Je veux annuler ma commande.",
           "Bonjour, j'ai un problème avec mon colis."],
    "de": ["Ich möchte bitte meine Rechnung sehen und mit jemandem sprechen.", "Wo ist meine Bestellung?",
           "Wann haben Sie geöffnet?", "Ich möchte mit einem Mitarbeiter sprechen.",
           "Mein Paket ist nicht angekommen."],
    "es": ["Quiero saber dónde está mi pedido, por favor.", "¿Cuál es su horario?", "Quiero hablar con una persona.",
           "Mi paquete no ha llegado.", "Necesito cancelar mi pedido."],
    "it": ["Dov'è il mio ordine?", "Vorrei parlare con un operatore.", "Quali sono i vostri orari di apertura?",
           "Il mio pacco non è arrivato.", "Voglio annullare l'ordine."],
    "pt": ["Onde está o meu pedido?", "Quero falar com um atendente.", "Qual é o horário de funcionamento?",
           "Minha encomenda não chegou.", "Quero cancelar o pedido."],
    "pl": ["Gdzie jest moje zamówienie?", "Chcę rozmawiać z konsultantem.", "W jakich godzinach jesteście otwarci?",
           "Moja paczka nie dotarła.", "Chcę anulować zamówienie."],
    "tr": ["Siparişim nerede?", "Bir temsilciyle konuşmak istiyorum.", "Çalışma saatleriniz nedir?", "Paketim gelmedi.",
           "Siparişimi iptal etmek istiyorum."],
    "zh": ["我想查一下我的订单", "你们几点开门", "转人工", "我的包裹还没到", "我要取消订单"],
    "ru": ["Где мой заказ?", "Я хочу поговорить с оператором.", "Когда вы открыты?", "Моя посылка не пришла.",
           "Я хочу отменить заказ."],
}
FOREIGN_HELD_OUT = {   # written with this script, before its first run
    "nl": ["Waar is mijn bestelling gebleven?", "Ik wil graag iemand spreken over mijn rekening.",
           "Hoe laat gaat de winkel vandaag dicht?", "Mijn pakket is beschadigd aangekomen."],
    "sv": ["Var är min beställning?", "Jag vill prata med en handläggare.", "När öppnar ni i morgon?",
           "Jag har inte fått mitt paket än."],
    "id": ["Pesanan saya belum sampai sampai sekarang.", "Saya mau bicara dengan petugas.",
           "Jam berapa tokonya buka?", "Saya ingin membatalkan pesanan saya."],
    "cs": ["Kde je moje objednávka?", "Chtěl bych mluvit s operátorem.", "Kdy máte otevřeno?",
           "Balík mi ještě nedorazil."],
    "ro": ["Unde este comanda mea?", "Vreau să vorbesc cu un operator.", "Care este programul magazinului?",
           "Coletul meu nu a ajuns încă."],
    "hu": ["Hol van a rendelésem?", "Szeretnék egy ügyintézővel beszélni.", "Mikor vannak nyitva?",
           "A csomagom még nem érkezett meg."],
    "el": ["Πού είναι η παραγγελία μου;", "Θέλω να μιλήσω με έναν υπάλληλο.", "Τι ώρα ανοίγετε;",
           "Το δέμα μου δεν έχει έρθει ακόμα."],
    "ja": ["注文した商品はいつ届きますか", "担当者と話したいです", "営業時間を教えてください",
           "荷物がまだ届いていません"],
    "hi": ["मेरा ऑर्डर कहाँ है", "मुझे किसी से बात करनी है", "आपकी दुकान कब खुलती है", "मेरा पार्सल अभी तक नहीं आया"],
    "vi": ["Đơn hàng của tôi ở đâu?", "Tôi muốn nói chuyện với nhân viên.", "Mấy giờ các bạn mở cửa?",
           "Gói hàng của tôi chưa đến."],
}

FOREIGN_HELD_OUT_2 = {   # written after the first run (the whole-answer floor was chosen on its held-out set), run once
    "fi": ["Missä minun tilaukseni on?", "Haluaisin puhua asiakaspalvelijan kanssa.", "Milloin olette auki?",
           "Pakettini ei ole vielä tullut."],
    "da": ["Hvor er min ordre?", "Jeg vil gerne tale med en medarbejder.", "Hvornår har I åbent i dag?",
           "Min pakke er ikke kommet endnu."],
    "sk": ["Kde je moja objednávka?", "Chcel by som hovoriť s operátorom.", "Kedy máte otvorené?",
           "Balík mi ešte neprišiel."],
    "bg": ["Къде е моята поръчка?", "Искам да говоря със служител.", "Кога отваряте?", "Пратката ми още не е дошла."],
    "uk": ["Де моє замовлення?", "Я хочу поговорити з оператором.", "О котрій ви відчиняєтесь?",
           "Моя посилка ще не прийшла."],
    "ms": ["Di mana pesanan saya?", "Saya mahu bercakap dengan pegawai.", "Pukul berapa kedai dibuka?",
           "Bungkusan saya belum sampai lagi."],
    "sw": ["Oda yangu iko wapi?", "Nataka kuongea na mhudumu.", "Mnafungua saa ngapi?", "Kifurushi changu hakijafika."],
    "ko": ["제 주문은 어디에 있나요", "상담원과 통화하고 싶어요", "영업시간이 어떻게 되나요", "택배가 아직 안 왔어요"],
    "ar": ["أين طلبي", "أريد التحدث مع موظف", "متى تفتحون", "لم يصل الطرد بعد"],
    "ta": ["என் ஆர்டர் எங்கே", "நான் ஒரு அதிகாரியிடம் பேச வேண்டும்", "கடை எப்போது திறக்கும்",
           "என் பார்சல் இன்னும் வரவில்லை"],
}


def tone(freqs: tuple[float, ...], on_s: float, off_s: float, seconds: float, level: float = 0.2) -> np.ndarray:
    """A cadenced telephone tone (ringback, busy, fax calling), 8 kHz float."""
    t = np.arange(int(R * seconds)) / R
    wave = sum(np.sin(2 * np.pi * f * t) for f in freqs) * level / len(freqs)
    return wave * ((t % (on_s + off_s)) < on_s)


NON_SPEECH_TUNED = {f"{name} {s} s": (lambda g=g, s=s: g(s)) for s in (4, 12)
                    for name, g in (("music", music), ("pink noise", pink_noise), ("hum", hum))}
NON_SPEECH_HELD_OUT = {
    "music, faster, another key 9 s": lambda: resample((music(13.5) * 32767).astype(np.int16), 12000, R)[: R * 9]
    .astype(np.float32) / 32767,
    "ringback 425 Hz 8 s": lambda: tone((425.0,), 1.0, 4.0, 8),
    "UK ringback 400+450 Hz 6 s": lambda: tone((400.0, 450.0), 0.4, 0.2, 6),
    "busy 480+620 Hz 5 s": lambda: tone((480.0, 620.0), 0.5, 0.5, 5),
    "fax calling 1100 Hz 6 s": lambda: tone((1100.0,), 0.5, 3.0, 6),
    "brown noise 10 s": lambda: np.cumsum(np.random.default_rng(11).normal(size=R * 10)) / 400 * 0.3,
    "white noise 3 s": lambda: np.random.default_rng(12).normal(0, 0.08, R * 3),
}


HOLD_MUSIC = Path("/usr/share/asterisk/moh")   # Debian's asterisk-moh-opsound-wav: five real tracks


def hold_music() -> dict:
    """Real music on hold, never used to choose anything: each track at 5, 40 and 80 s, for 4, 8 and 14 s."""
    import soundfile as sf

    clips = {}
    for path in sorted(HOLD_MUSIC.glob("*.wav")):
        audio, rate = sf.read(path, dtype="int16", always_2d=True)
        audio = resample(audio[:, 0], rate, R).astype(np.float32) / 32767
        for start in (5, 40, 80):
            for seconds in (4, 8, 14):
                if len(audio) >= (start + seconds) * R:
                    clips[f"{path.stem} at {start} s, {seconds} s"] = audio[start * R:(start + seconds) * R]
    if not clips:
        sys.exit(f"no music on hold in {HOLD_MUSIC}: install Debian's asterisk-moh-opsound-wav (scripts/setup.sh)")
    return clips


def spoken(voice, text: str) -> np.ndarray:
    return render([("pause", 300), ("say", text), ("pause", 300)], voice)


def outcome(interp: Interpreter, state: CallState, heard) -> str:
    after, _ = interp.handle(state, Heard(heard.text, heard.confidence, doubt=heard.doubt))
    if after.last is not None and after.last.choice:
        return "took " + after.last.choice
    if after.confirming is not None:
        return "offered " + after.confirming.name
    return "no match"


def mandarin_menu() -> tuple:
    """whisper base and the retail flow's Mandarin main menu (the caller-ID lookup answered as failed)."""
    from ivr.asr.bundled import installed_base_model
    from ivr.events import Fetched
    from ivr.flow.http import HttpResult

    path = installed_base_model()
    if path is None:
        sys.exit("whisper base is not installed: run scripts/setup.sh")
    interp = Interpreter(load_flow(ROOT / "flows" / "retail" / "retail.yaml", language="zh-CN"),
                         {"ORDERS_API": "http://127.0.0.1:9"}, "zh-CN")
    state, actions = interp.handle(CallState(), CallStarted())
    while state.waiting:
        state, actions = interp.handle(state, Fetched(HttpResult(False, 0, None, "", "connect", 1, 1)))
    return WhisperAsr(path, language="zh"), interp, state, next(a for a in actions if isinstance(a, Listen)).expect


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    asr = WhisperAsr(bundled_model_path())
    interp = Interpreter(load_flow(ROOT / "flows" / "demo.yaml"))
    state, actions = interp.handle(CallState(), CallStarted())
    expect = next(a for a in actions if isinstance(a, Listen)).expect
    menus = {"en": (asr, interp, state, expect), "zh": mandarin_menu()}
    piper = PiperTts()
    clips: list[tuple[str, str, str | None, np.ndarray]] = []    # (set, what, expected answer or None, pcm)
    for voice_name, voice in (("piper", piper), ("espeak en-us", Espeak("en-us"))):
        for answer, texts in ENGLISH.items():
            clips += [(f"English requests, {voice_name}", t, answer,
                       resample(spoken(voice, t), R, 16000)) for t in texts]
    for label, sets in (("tuned", FOREIGN_TUNED), ("held out", FOREIGN_HELD_OUT), ("held out 2", FOREIGN_HELD_OUT_2)):
        for lang, texts in sets.items():
            voice = PinyinEspeak() if lang == "zh" else Espeak(lang)
            clips += [(f"other languages, {label}", f"{lang}: {t}", None, resample(spoken(voice, t), R, 16000))
                      for t in texts]
    for label, sets in (("tuned", NON_SPEECH_TUNED), ("held out", NON_SPEECH_HELD_OUT)):
        clips += [(f"music, noise, tones, {label}", name, None, on_line(make())) for name, make in sets.items()]
    music = hold_music()
    clips += [("real music on hold, held out", name, None, on_line(sound)) for name, sound in music.items()]
    clips += [("Mandarin menu (whisper base): real music on hold, tuned", name, None, on_line(sound))
              for name, sound in music.items()]
    stock, doubt, echo = dict(whisper.STOCK_WORDS), dict(whisper.DOUBT_BELOW), whisper.ECHO_NO_SPEECH_PROB
    rows, t0 = [], time.perf_counter()
    for guards in ("off", "on"):
        whisper.STOCK_WORDS, whisper.DOUBT_BELOW, whisper.ECHO_NO_SPEECH_PROB = \
            (stock, doubt, echo) if guards == "on" else ({}, {}, 2.0)
        for group, what, expected, pcm in clips:
            recognizer, menu, at_menu, phrases = menus["zh" if group.startswith("Mandarin") else "en"]
            heard = recognizer.transcribe(pcm, phrases)
            got = outcome(menu, at_menu, heard)
            rows.append({"guards": guards, "set": group, "clip": what, "expected": expected, "heard": heard.text,
                         "confidence": heard.confidence, "doubt": heard.doubt,
                         "dropped": heard.timing.get("asr_dropped", ""), "outcome": got})
    whisper.STOCK_WORDS, whisper.DOUBT_BELOW, whisper.ECHO_NO_SPEECH_PROB = stock, doubt, echo
    summary = {}
    for (group, guards), members in _grouped(rows).items():
        counts = Counter()
        for r in members:
            kind, _, name = r["outcome"].partition(" ")
            right = name == r["expected"]
            counts[{"took": "taken right" if right else "taken WRONG", "offered": "offered right" if right
                    else "offered wrong"}.get(kind, "no match")] += 1
        summary.setdefault(group, {})[guards] = {"clips": len(members), **counts}
    print(f"\n{len(clips)} clips, {time.perf_counter() - t0:.0f} s\n")
    kinds = ["taken right", "offered right", "taken WRONG", "offered wrong", "no match"]
    print("| set | clips | guards | " + " | ".join(kinds) + " |\n|---|---|---|" + "---|" * len(kinds))
    for group, by in summary.items():
        for guards in ("off", "on"):
            c = by[guards]
            print(f"| {group} | {c['clips']} | {guards} | " + " | ".join(str(c.get(k, 0)) for k in kinds) + " |")
    print("\nchanged by the guards:")
    off = {(r["set"], r["clip"]): r for r in rows if r["guards"] == "off"}
    for r in rows:
        before = off[(r["set"], r["clip"])] if r["guards"] == "on" else None
        if before is not None and before["outcome"] != r["outcome"]:
            print(f"  {r['set']}: {r['clip'][:50]!r} heard {before['heard'][:50]!r} ({before['confidence']:.2f}): "
                  f"{before['outcome']} -> {r['outcome']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine_info(), "summary": summary, "rows": rows}, indent=1,
                                        ensure_ascii=False) + "\n")


def _grouped(rows: list[dict]) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault((r["set"], r["guards"]), []).append(r)
    return out


if __name__ == "__main__":
    main()

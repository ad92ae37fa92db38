"""Gather what callers were heard saying into the intent library: the read parts' step answers.

    .venv/bin/python scripts/gather_heard.py            # writes ivr/flow/builtin/library/heard/<domain>.<lang>.yaml

The evaluation set's parts (tests/data/nlu/hotlines/<part>_<lang>.yaml) are caller sentences written by
independent writers for a shop's and a mobile operator's hotline. Once a sealed part has been scored and read, it
is read (bench_nlu.HEARD_PARTS); its answers to the two menus then become examples of the library intents
the test flows tag them with (flows_<lang>.yaml `library:`), filed by part so that bench_nlu can judge each part on
a library that never heard it (builtins.library(lang, leave_out=(part,))). Only step answers go in: globals, yes/no and
out-of-scope sentences stay out (the built-ins and the off-topic lists are written apart). A sentence already in the
library, or in an earlier part, is not repeated. Re-run it when a sealed part becomes a read one; never with a part
still sealed.
"""

import sys
from pathlib import Path

import yaml
from bench_nlu import DATA, HEARD_PARTS

from ivr.flow import builtins
from ivr.flow.patterns import normalize

HEADER = """\
# What callers were heard saying for the {domain} domain's intents ({language}): the answers to the {step} menu in
# the read parts of the NLU evaluation set (tests/data/nlu/hotlines/<part>_{language}.yaml: {first} .. {last}, each
# written by an independent writer as callers of the test hotlines speak, ASR-style), filed by part. Gathered by
# scripts/gather_heard.py (do not edit by hand: re-run it when a sealed part becomes a read one); ivr.flow.builtins
# adds them to the library intents' examples (matched by meaning only). No part still sealed is in here.
"""


def gather(language: str) -> dict[str, dict[str, dict[str, list[str]]]]:
    """{domain: {intent: {part: sentences}}} of one language."""
    tags = yaml.safe_load((DATA / f"flows_{language}.yaml").read_text(encoding="utf-8"))["library"]
    written = builtins.library(language, leave_out=HEARD_PARTS)     # the library as its files write it
    seen = {name: {*written[name].phrases, *written[name].examples} for name in tags.values()}
    out: dict[str, dict[str, dict[str, list[str]]]] = {}
    for part in HEARD_PARTS:
        data = yaml.safe_load((DATA / f"{part}_{language}.yaml").read_text(encoding="utf-8"))
        for by_intent in data.values():
            for intent, texts in by_intent.items():
                name = tags.get(str(intent))
                if not name:
                    continue
                domain, short = name.split(".")
                new = [t for t in dict.fromkeys(normalize(str(t)) for t in texts) if t and t not in seen[name]]
                seen[name].update(new)
                if new:
                    out.setdefault(domain, {}).setdefault(short, {})[part] = new
    return out


def main() -> None:
    builtins.HEARD_DIR.mkdir(exist_ok=True)
    for language in ("en", "zh"):
        for domain, intents in gather(language).items():
            step = {"retail": "shop's", "telecom": "mobile operator's"}.get(domain, domain)
            text = HEADER.format(domain=domain, language=language, step=step, first=HEARD_PARTS[0],
                                 last=HEARD_PARTS[-1])
            body = yaml.safe_dump(intents, allow_unicode=True, sort_keys=False, width=120, default_style=None)
            path = builtins.HEARD_DIR / f"{domain}.{language}.yaml"
            path.write_text(text + body, encoding="utf-8")
            count = sum(len(v) for parts in intents.values() for v in parts.values())
            print(f"{path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}: {count} sentences")


if __name__ == "__main__":
    sys.exit(main())

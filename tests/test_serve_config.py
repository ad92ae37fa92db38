"""`ivr serve` settings: file, environment overrides, and errors that say what to fix."""

import pytest

from ivr.errors import UserError
from ivr.service.config import load_config


def test_yaml_config_and_env_overrides(tmp_path):
    path = tmp_path / "ivr.yaml"
    path.write_text("""
listen:
  sip: {host: 127.0.0.1, port: 5070, allow: [127.0.0.0/8]}
  ws: {port: 8090}
flows:
  default: flows/a.yaml
  routes: {"4000": flows/zh.yaml}
limits: {max_calls: 4, max_call: 10min, shutdown_grace: 5s}
""", encoding="utf-8")
    cfg = load_config(path, env={"IVR_MAX_CALLS": "8", "IVR_WS": "127.0.0.1:9000", "IVR_WS_TOKEN": "s3cret"})
    assert cfg.listeners["sip"].port == 5070 and cfg.listeners["sip"].options == {"allow": ["127.0.0.0/8"]}
    assert (cfg.listeners["ws"].host, cfg.listeners["ws"].port) == ("127.0.0.1", 9000)
    assert cfg.max_calls == 8 and cfg.max_call_ms == 600_000 and cfg.shutdown_grace_ms == 5000
    assert cfg.default_flow == tmp_path / "flows/a.yaml" and cfg.routes["4000"] == tmp_path / "flows/zh.yaml"
    assert cfg.ws_token == "s3cret"


def test_toml_config(tmp_path):
    path = tmp_path / "ivr.toml"
    path.write_text('[listen.audiosocket]\nport = 9100\n[limits]\nmax_calls = 2\n', encoding="utf-8")
    cfg = load_config(path, env={})
    assert cfg.listeners["audiosocket"].port == 9100 and cfg.max_calls == 2


@pytest.mark.parametrize(("text", "message"), [
    ("listn: {}", "unknown key 'listn'"),
    ("listen: {smtp: {}}", "unknown listener 'smtp'"),
    ("limits: {max_calls: 0}", "max_calls must be a whole number >= 1"),
    ("limits: {max_call: soon}", "max_call must be a duration"),
    ("limits: {shutdown_grace: 30}", "write 30s for seconds"),
    ("flows: {reload: 'yes'}", "flows.reload must be true or false"),
    ("- a\n- b", "must be a mapping"),
])
def test_bad_config_says_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "ivr.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        load_config(path, env={})


def test_bad_env_override(tmp_path):
    with pytest.raises(UserError, match="not host:port"):
        load_config(None, env={"IVR_SIP": "5060"})

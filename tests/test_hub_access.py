"""One endpoint and token resolution for every command: explicit option > config > HF_ENDPOINT / HF_TOKEN >
the login huggingface_hub saved, the gateway included."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakehub import fake_hub

from modelreg.config import Config, load_config
from modelreg.errors import ConfigError
from modelreg.hf.client import hub_endpoint, hub_token

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_saved_login_token"


@pytest.fixture
def hub():
    yield from fake_hub(tokens={TOKEN})


def test_explicit_option_wins_over_config_and_environment(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_TOKEN", "from-env")
    config = Config(hf_endpoint="http://127.0.0.1:8")
    assert hub_endpoint(config, "http://127.0.0.1:7/") == "http://127.0.0.1:7"
    assert hub_endpoint(config) == "http://127.0.0.1:8"
    assert hub_token("explicit") == "explicit"
    assert hub_token() == "from-env"


@pytest.mark.parametrize("url", ["http://[::1", "ftp://example.org", "example.org", "http://", "http://h:99999"])
def test_a_bad_endpoint_is_one_clear_error(monkeypatch, url):
    with pytest.raises(ConfigError, match="--hf-endpoint must be an absolute http"):
        hub_endpoint(Config(), url)
    monkeypatch.setenv("HF_ENDPOINT", url)
    with pytest.raises(ConfigError, match="HF_ENDPOINT must be an absolute http"):
        hub_endpoint(Config())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ask_gateway(hf_home: Path, hub, repo, tmp_path: Path) -> tuple[int, str]:
    """Run ``modelreg webseed`` with only HF_ENDPOINT and HF_HOME set and ask it for the gated LFS file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
    env.update(PYTHONPATH=str(ROOT), HF_ENDPOINT=hub.endpoint, HF_HOME=str(hf_home))
    port = _free_port()
    cdn = hub.cdn_endpoint.split("://")[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelreg", "webseed", "--port", str(port), "--allow", f"Org/Gated@{repo.sha}",
         "--redirect-host", cdn, "--access-log", ""],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", f"/v1/Org/Gated/{repo.sha}/Gated/model.safetensors")
                response = conn.getresponse()
                return response.status, response.getheader("Location") or response.read().decode()
            except ConnectionRefusedError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(proc.stderr.read().decode()) from None
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(10)


def test_webseed_honours_hf_endpoint_and_the_saved_login(hub, tmp_path):
    repo = hub.add_repo("Org/Gated", {"model.safetensors": b"\x01" * 4096}, lfs={"model.safetensors"},
                        gated="manual")
    logged_in, logged_out = tmp_path / "home-in", tmp_path / "home-out"
    logged_in.mkdir()
    logged_out.mkdir()
    (logged_in / "token").write_text(TOKEN)  # where `hf auth login` saves it

    status, location = _ask_gateway(logged_in, hub, repo, tmp_path)
    assert status in (302, 307) and location.startswith(hub.cdn_endpoint)  # the fake hub, found via HF_ENDPOINT
    assert any(r.authorization for r in hub.find_requests(origin="hub"))

    status, body = _ask_gateway(logged_out, hub, repo, tmp_path)  # no login: the gated file is refused upstream
    assert status == 502 and "401" in body


@pytest.mark.parametrize("url", ["http://[::1", "http://example.org:99999"])
def test_a_bad_endpoint_in_the_config_file_is_one_clear_error(tmp_path, url):
    config = tmp_path / "modelreg.toml"
    config.write_text(f'hf_endpoint = "{url}"\n')
    with pytest.raises(ConfigError, match=r"'hf_endpoint' must be an absolute http\(s\) URL"):
        load_config(config)

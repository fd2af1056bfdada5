"""Models: chat clients through the official SDKs, behind one small protocol.

`openai` covers OpenAI and every OpenAI-compatible server (vLLM, Ollama, llama.cpp's server,
OpenRouter); `anthropic` covers Claude. The SDKs retry 429s, 5xx and timeouts with backoff
themselves (`max_retries`); what still fails becomes a one-line ModelError that says what to do.
Each Completion's cost comes from genai-prices' bundled price table (offline), or from prices per
million tokens given for the model ([agent] input_usd_per_mtok / output_usd_per_mtok), which win.

Messages: `complete(system, messages)` takes each message's `content` as a str, or as a list of text parts
`{"type": "text", "text": ..., "cache": bool}` whose texts, joined as they are, make the message. A request is
ordered stable-first; the system prompt is stable, and a part marked `cache` ends a stable prefix. OpenAI (and
OpenAI-compatible servers) cache identical prefixes by themselves: the parts are joined into one string. Anthropic
caches up to breakpoints: the system prompt and each marked part carry `cache_control` (at most 4 in all).
Tokens read from the cache are counted (`tokens_cached`) and priced at the cache's rate, as are Anthropic's
cache writes (`tokens_cache_written`).
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from autoresearch.core.errors import UserError, first_line


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
    cost_usd: float | None = None  # None: the price is unknown
    tokens_cached: int = 0  # of tokens_in, read from the provider's prompt cache
    tokens_cache_written: int = 0  # of tokens_in, written to the prompt cache (Anthropic; priced above input)


class ChatModel(Protocol):
    name: str

    def complete(self, system: str, messages: list[dict], json_schema: dict | None = None) -> Completion: ...


@dataclass(frozen=True)
class Pricing:
    """Where a model's price comes from. `usd_per_mtok` (input, output), given in [agent], wins; else
    genai-prices' bundled table (never the network), by the server's URL when it names a known provider
    (OpenRouter, Groq, ...), else by `provider` (openai, anthropic)."""
    provider: str | None = None
    base_url: str | None = None
    usd_per_mtok: tuple[float, float] | None = None

    def cost(self, model: str, tokens_in: int, tokens_out: int, tokens_cached: int = 0,
             tokens_cache_written: int = 0) -> float | None:
        """USD for one call, or None when the price is unknown. `tokens_cached` (read from the prompt cache) and
        `tokens_cache_written` are part of `tokens_in`; prices given in [agent] have no cache rates."""
        if self.usd_per_mtok is not None:
            per_in, per_out = self.usd_per_mtok
            return (tokens_in * per_in + tokens_out * per_out) / 1e6
        from genai_prices import Usage, calc_price

        usage = Usage(input_tokens=tokens_in, output_tokens=tokens_out, cache_read_tokens=tokens_cached or None,
                      cache_write_tokens=tokens_cache_written or None)
        for where in ([{"provider_api_url": self.base_url}] if self.base_url else []) + [{"provider_id": self.provider}]:
            try:
                return float(calc_price(usage, model_ref=model, **where).total_price)
            except LookupError:  # an unknown provider or model
                continue
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
    usd_per_mtok: tuple[float, float] | None = None  # (input, output) USD per million tokens; None: genai-prices

    def __post_init__(self):
        import openai

        key = self.api_key or os.environ.get(self.api_key_env)
        if not key and not self.base_url:
            raise ModelError(f"no API key: set {self.api_key_env}, or point --base-url at a local OpenAI-compatible server")
        self._client = openai.OpenAI(api_key=key or "not-needed", base_url=self.base_url, timeout=self.timeout,
                                     max_retries=self.max_retries)

    def complete(self, system: str, messages: list[dict], json_schema: dict | None = None) -> Completion:
        import openai

        messages = [{**message, "content": _joined(message["content"])} for message in messages]
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
        details = getattr(usage, "prompt_tokens_details", None)
        cached = (getattr(details, "cached_tokens", None) or 0) if details else 0
        cost = Pricing("openai", self.base_url, self.usd_per_mtok).cost(self.name, tokens_in, tokens_out, cached)
        return Completion(text=response.choices[0].message.content or "", model=self.name, tokens_in=tokens_in,
                          tokens_out=tokens_out, latency_s=latency, cost_usd=cost, tokens_cached=cached)


@dataclass
class AnthropicChat:
    name: str
    base_url: str | None = None
    api_key_env: str = "ANTHROPIC_API_KEY"
    timeout: float = 300.0
    max_retries: int = 5
    temperature: float | None = 0.7  # 0..1 (more is sent as 1); not sent with thinking, nor to a model refusing it
    max_tokens: int = 4096  # for the answer; thinking's budget comes on top
    thinking_tokens: int = 0  # > 0: extended thinking with this budget (Anthropic wants at least 1024)
    usd_per_mtok: tuple[float, float] | None = None  # (input, output) USD per million tokens; None: genai-prices

    def __post_init__(self):
        import anthropic

        key = os.environ.get(self.api_key_env)
        if not key:
            raise ModelError(f"no API key: set {self.api_key_env} to use Anthropic models")
        self._client = anthropic.Anthropic(api_key=key, base_url=self.base_url, timeout=self.timeout,
                                           max_retries=self.max_retries)
        self._takes_temperature = True  # until the model refuses one

    def complete(self, system: str, messages: list[dict], json_schema: dict | None = None) -> Completion:
        import anthropic

        args: dict[str, Any] = dict(model=self.name, messages=_anthropic_messages(messages, cache_system=bool(system)),
                                    max_tokens=self.max_tokens)
        if system:  # the system prompt is always stable: the first cache breakpoint
            args["system"] = [{"type": "text", "text": system, "cache_control": EPHEMERAL}]
        if self.thinking_tokens > 0:  # thinking takes temperature 1, Anthropic's default: none is sent
            args["thinking"] = {"type": "enabled", "budget_tokens": self.thinking_tokens}
            args["max_tokens"] = self.max_tokens + self.thinking_tokens
        elif self.temperature is not None and self._takes_temperature:
            # the API takes a temperature, anthropic>=1.0's create() no longer names it: it goes in the body
            args["extra_body"] = {"temperature": min(float(self.temperature), 1.0)}
        started = time.monotonic()
        with _one_line_errors(anthropic, self.base_url or "api.anthropic.com", self.api_key_env, self.max_retries):
            try:
                response = self._client.messages.create(**args)
            except anthropic.BadRequestError as exc:
                if "extra_body" not in args or "temperature" not in str(exc.message):
                    raise
                # models from Opus 4.7 on refuse a temperature ("deprecated for this model"): their own sampling
                self._takes_temperature = False
                response = self._client.messages.create(**{k: v for k, v in args.items() if k != "extra_body"})
        latency = time.monotonic() - started
        # the answer is the text blocks: thinking blocks are not part of it
        text = "".join(block.text for block in response.content if getattr(block, "type", "") == "text")
        usage = response.usage  # its input_tokens leave out the tokens read from or written to the prompt cache
        cached = getattr(usage, "cache_read_input_tokens", None) or 0
        written = getattr(usage, "cache_creation_input_tokens", None) or 0
        tokens_in, tokens_out = usage.input_tokens + cached + written, usage.output_tokens
        cost = Pricing("anthropic", self.base_url, self.usd_per_mtok).cost(self.name, tokens_in, tokens_out, cached,
                                                                             written)
        return Completion(text=text, model=self.name, tokens_in=tokens_in, tokens_out=tokens_out, latency_s=latency,
                          cost_usd=cost, tokens_cached=cached, tokens_cache_written=written)


EPHEMERAL = {"type": "ephemeral"}
MAX_CACHE_BREAKPOINTS = 4  # Anthropic's limit per request


def _joined(content: str | list[dict]) -> str:
    """A message's content as one string: its text parts' texts, joined as they are."""
    return content if isinstance(content, str) else "".join(part["text"] for part in content)


def _anthropic_messages(messages: list[dict], cache_system: bool) -> list[dict]:
    """Messages as Anthropic takes them: each text part a text block, `cache_control` on the parts marked `cache`.
    Past the limit of breakpoints (the system prompt takes one), the first mark and the last ones are kept."""
    marks = [(i, j) for i, message in enumerate(messages) if not isinstance(message["content"], str)
             for j, part in enumerate(message["content"]) if part.get("cache") and part["text"]]
    room = MAX_CACHE_BREAKPOINTS - cache_system
    kept = set(marks if len(marks) <= room else marks[:1] + marks[len(marks) - room + 1:])
    out = []
    for i, message in enumerate(messages):
        content = message["content"]
        if not isinstance(content, str):
            blocks = [{"type": "text", "text": part["text"], **({"cache_control": EPHEMERAL} if (i, j) in kept else {})}
                      for j, part in enumerate(content) if part["text"]]  # Anthropic refuses empty text blocks
            content = blocks or ""
        out.append({**{k: v for k, v in message.items() if k != "content"}, "content": content})
    return out


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

"""Agents: the proposers a study uses, made from [agent] settings (or [[agent]] tables) and the command line.

`--provider` may be given more than once, each as NAME or NAME:MODEL (`--provider tpe --provider
openai:gpt-4.1`); `--model` and `--base-url` fill in for providers that name none. Each proposer
gets a name that is unique in the study (`random`, `tpe`, `openai:gpt-4.1`): the ledger, the bandit,
`history` and the report tell them apart by it.

Model prices: [agent] input_usd_per_mtok / output_usd_per_mtok when given, else genai-prices' table;
`check_prices` refuses a --max-cost that a model of unknown price could never reach.
"""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack

from autoresearch.core.errors import UserError
from autoresearch.core.settings import PROVIDERS, AgentSettings
from autoresearch.core.task import CONFIG_NAME, ConfigError
from autoresearch.propose.base import Proposer
from autoresearch.propose.llm import KnobProposer, LLMProposer
from autoresearch.propose.models import AnthropicChat, OpenAIChat, Pricing
from autoresearch.propose.search import RandomProposer

NO_MODEL_HINT = ("no model configured: using the built-in random proposer over the knobs train.py declares. "
                 "Plug in a model with --model NAME (OPENAI_API_KEY or ANTHROPIC_API_KEY), "
                 "--base-url URL for an OpenAI-compatible server (vLLM, Ollama, llama.cpp), or --provider local")
DEFAULT_MODELS = {"openai": "gpt-4.1", "anthropic": "claude-sonnet-4-6"}


class UnknownPriceError(UserError):
    """--max-cost with a model whose price neither genai-prices nor [agent] knows: the cap could never trigger."""


def usd_per_mtok(settings: AgentSettings) -> tuple[float, float] | None:
    """The (input, output) USD per million tokens [agent] gives; a local model costs nothing; None: ask genai-prices."""
    if settings.input_usd_per_mtok is None:  # both or neither: settings.py
        return (0.0, 0.0) if settings.provider == "local" else None
    return settings.input_usd_per_mtok, settings.output_usd_per_mtok


def check_prices(settings: list[AgentSettings], max_cost_usd: float | None) -> None:
    """Before a study starts: with --max-cost, every model's price must be known, or its spend would count as 0."""
    if max_cost_usd is None:
        return
    for one in settings:
        if one.provider not in ("openai", "anthropic") or usd_per_mtok(one) is not None:
            continue  # random, tpe and a local model cost nothing
        model, pricing = model_and_pricing(one)
        if pricing.cost(model, 0, 0) is None:
            raise UnknownPriceError(f"--max-cost needs the price of model {model!r}, which genai-prices does not know: "
                                    f"give input_usd_per_mtok and output_usd_per_mtok (USD per million tokens, "
                                    f"0 for your own server) under [agent] in {CONFIG_NAME}")


def model_and_pricing(settings: AgentSettings) -> tuple[str, Pricing]:
    """The model a resolved [agent] asks, and where its price comes from ([agent]'s prices, else genai-prices)."""
    model = settings.model or DEFAULT_MODELS.get(settings.provider, "")
    return model, Pricing(settings.provider, settings.base_url or None, usd_per_mtok(settings))


def resolve(settings: AgentSettings, **overrides) -> AgentSettings:
    """`settings` with the command line's overrides, and the provider it implies when none is named: a base_url
    means an OpenAI-compatible server (whatever the model's name; name provider "anthropic" for Anthropic's API
    elsewhere), a model named claude* Anthropic, another model OpenAI, neither the random proposer."""
    changes = {k: v for k, v in overrides.items() if v not in (None, "")}
    settings = dataclasses.replace(settings, **changes)
    if not settings.provider:
        if not settings.model and not settings.base_url:
            provider = "random"
        elif settings.model.startswith("claude") and not settings.base_url:
            provider = "anthropic"
        else:
            provider = "openai"
        settings = dataclasses.replace(settings, provider=provider)
    return settings


def from_provider_flags(flags: list[str], base: AgentSettings, **overrides) -> list[AgentSettings]:
    """One settings per `--provider NAME[:MODEL]`; the other flags apply to each."""
    out = []
    for flag in flags:
        provider, _, model = flag.partition(":")
        if provider not in PROVIDERS:
            raise ConfigError(f"--provider {flag!r}: the provider must be one of {', '.join(PROVIDERS)}")
        out.append(resolve(base, **{**overrides, "provider": provider, "model": model or overrides.get("model")}))
    return out


def proposer_name(settings: AgentSettings) -> str:
    if settings.provider in ("openai", "anthropic"):
        return f"{settings.provider}:{settings.model or DEFAULT_MODELS[settings.provider]}"
    return settings.provider


def make_proposers(settings: list[AgentSettings], stack: ExitStack) -> list[Proposer]:
    """The proposers for `settings`, each with a name of its own; servers they start are stopped by `stack`."""
    names: dict[str, int] = {}
    proposers = []
    for one in settings:
        name = proposer_name(one)
        names[name] = names.get(name, 0) + 1
        proposer = make_proposer(one, stack, name if names[name] == 1 else f"{name}#{names[name]}")
        proposer.max_fix_attempts = one.max_fix_attempts  # each [[agent]]'s own, read by the study
        proposers.append(proposer)
    return proposers


def make_proposer(settings: AgentSettings, stack: ExitStack, name: str | None = None) -> Proposer:
    """The proposer for `settings`; servers it starts (a local model) are stopped by `stack`."""
    name = name or proposer_name(settings)
    if settings.provider == "random":
        return RandomProposer(seed=settings.seed, name=name)
    if settings.provider == "tpe":
        from autoresearch.propose.tpe import TPEProposer

        return TPEProposer(seed=settings.seed, name=name)
    if settings.provider == "anthropic":
        model = AnthropicChat(settings.model or DEFAULT_MODELS["anthropic"], base_url=settings.base_url or None,
                              api_key_env=settings.api_key_env or "ANTHROPIC_API_KEY", temperature=settings.temperature,
                              thinking_tokens=settings.thinking_tokens, usd_per_mtok=usd_per_mtok(settings))
        return LLMProposer(model, settings.max_edit_retries, settings.context_tokens, name=name)
    if settings.provider == "local":
        from autoresearch.propose.local_model import LocalModelServer

        server = stack.enter_context(LocalModelServer())
        model = OpenAIChat(server.model, base_url=server.base_url, api_key=server.api_key, fold_system=True,
                           max_tokens=300, timeout=120, temperature=settings.temperature,
                           usd_per_mtok=usd_per_mtok(settings))
        return KnobProposer(model, settings.max_edit_retries, name=name)
    model = OpenAIChat(settings.model or DEFAULT_MODELS["openai"], base_url=settings.base_url or None,
                       api_key_env=settings.api_key_env or "OPENAI_API_KEY", temperature=settings.temperature,
                       usd_per_mtok=usd_per_mtok(settings))
    return LLMProposer(model, settings.max_edit_retries, settings.context_tokens, name=name)

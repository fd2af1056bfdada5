"""Agents: the proposers a study uses, made from [agent] settings (or [[agent]] tables) and the command line.

`--provider` may be given more than once, each as NAME or NAME:MODEL (`--provider tpe --provider
openai:gpt-4.1`); `--model` and `--base-url` fill in for providers that name none. Each proposer
gets a name that is unique in the study (`random`, `tpe`, `openai:gpt-4.1`): the ledger, the bandit,
`history` and the report tell them apart by it.
"""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack

from autoresearch.core.task import PROVIDERS, AgentSettings, ConfigError
from autoresearch.propose.base import Proposer
from autoresearch.propose.llm import KnobProposer, LLMProposer
from autoresearch.propose.models import AnthropicChat, OpenAIChat
from autoresearch.propose.search import RandomProposer

NO_MODEL_HINT = ("no model configured: using the built-in random proposer over the knobs train.py declares. "
                 "Plug in a model with --model NAME (OPENAI_API_KEY or ANTHROPIC_API_KEY), "
                 "--base-url URL for an OpenAI-compatible server (vLLM, Ollama, llama.cpp), or --provider local")
DEFAULT_MODELS = {"openai": "gpt-4.1", "anthropic": "claude-sonnet-4-6"}


def resolve(settings: AgentSettings, **overrides) -> AgentSettings:
    """`settings` with the command line's overrides, and the provider it implies when none is named."""
    changes = {k: v for k, v in overrides.items() if v not in (None, "")}
    settings = dataclasses.replace(settings, **changes)
    if not settings.provider:
        if not settings.model and not settings.base_url:
            provider = "random"
        elif settings.model.startswith("claude"):
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
        proposers.append(make_proposer(one, stack, name if names[name] == 1 else f"{name}#{names[name]}"))
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
                              api_key_env=settings.api_key_env or "ANTHROPIC_API_KEY")
        return LLMProposer(model, settings.max_edit_retries, settings.context_tokens, name=name)
    if settings.provider == "local":
        from autoresearch.propose.local_model import LocalModelServer

        server = stack.enter_context(LocalModelServer())
        model = OpenAIChat(server.model, base_url=server.base_url, api_key=server.api_key, fold_system=True,
                           max_tokens=300, timeout=120, temperature=settings.temperature)
        return KnobProposer(model, settings.max_edit_retries, name=name)
    model = OpenAIChat(settings.model or DEFAULT_MODELS["openai"], base_url=settings.base_url or None,
                       api_key_env=settings.api_key_env or "OPENAI_API_KEY", temperature=settings.temperature)
    return LLMProposer(model, settings.max_edit_retries, settings.context_tokens, name=name)

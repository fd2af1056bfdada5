"""Agent: the proposer a run uses, made from [agent] settings and command-line overrides."""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack

from autoresearch.propose.models import AnthropicChat, OpenAIChat
from autoresearch.propose.proposers import KnobProposer, LLMProposer, Proposer, RandomProposer
from autoresearch.core.task import AgentSettings

NO_MODEL_HINT = ("no model configured: using the built-in random proposer over the knobs train.py declares. "
                 "Plug in a model with --model NAME (OPENAI_API_KEY or ANTHROPIC_API_KEY), "
                 "--base-url URL for an OpenAI-compatible server (vLLM, Ollama, llama.cpp), or --provider local")


def resolve(settings: AgentSettings, **overrides) -> AgentSettings:
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


def make_proposer(settings: AgentSettings, stack: ExitStack) -> Proposer:
    """The proposer for `settings`; servers it starts (a local model) are stopped by `stack`."""
    common = dict(temperature=settings.temperature)
    if settings.provider == "random":
        return RandomProposer(seed=settings.seed)
    if settings.provider == "tpe":
        from autoresearch.propose.tpe import TPEProposer

        return TPEProposer(seed=settings.seed)
    if settings.provider == "anthropic":
        model = AnthropicChat(settings.model or "claude-sonnet-4-6", base_url=settings.base_url or None,
                              api_key_env=settings.api_key_env or "ANTHROPIC_API_KEY")
        return LLMProposer(model, settings.max_edit_retries, settings.context_tokens)
    if settings.provider == "local":
        from autoresearch.propose.local_model import LocalModelServer

        server = stack.enter_context(LocalModelServer())
        model = OpenAIChat(server.model, base_url=server.base_url, api_key=server.api_key, fold_system=True,
                           max_tokens=300, timeout=120, **common)
        return KnobProposer(model, settings.max_edit_retries)
    model = OpenAIChat(settings.model or "gpt-4.1", base_url=settings.base_url or None,
                       api_key_env=settings.api_key_env or "OPENAI_API_KEY", **common)
    return LLMProposer(model, settings.max_edit_retries, settings.context_tokens)

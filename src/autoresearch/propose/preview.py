"""A request's preview: what an [agent]'s model would be sent next and what it would cost, without
sending it (`autoresearch request`). The texts are the ones `LLMProposer` sends; tokens are estimated
as the context budget counts them (characters / 4); prices come from the same place as the spend
the ledger records ([agent]'s prices, else genai-prices' bundled table).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from autoresearch.core.settings import AgentSettings
from autoresearch.propose.agent import model_and_pricing, proposer_name
from autoresearch.propose.base import Snapshot
from autoresearch.propose.context import CHARS_PER_TOKEN, build_request
from autoresearch.propose.llm import system_prompt

SENDS_REQUESTS = ("openai", "anthropic")  # random and tpe ask no model; a local model answers a knob-only request


@dataclass(frozen=True)
class RequestPreview:
    agent: str  # the proposer's name: "openai:gpt-4.1", ...
    model: str
    system: str
    stable: str  # the user message's first part: the same from one request to the next (cached with the system)
    changing: str  # its last part: the noise, the history, the notes, the ask
    usd_uncached: float | None  # input only; None when the model's price is unknown
    usd_cached: float | None  # the same request with its stable prefix read from the prompt cache
    sends_requests: bool  # False: this agent asks no model (shown: what an LLM agent would be sent)

    @property
    def tokens(self) -> int:
        return self.tokens_cacheable + _tokens(self.changing)

    @property
    def tokens_cacheable(self) -> int:
        """The system prompt and the stable part: the prefix both APIs can serve from their cache."""
        return _tokens(self.system) + _tokens(self.stable)

    def summary(self) -> str:
        other = "is sent a knob-only request instead" if self.agent.startswith("local") else "asks no model"
        who = self.agent if self.sends_requests else f"an LLM agent ({self.agent} {other})"
        size = len(self.system) + len(self.stable) + len(self.changing)
        lines = [f"the next request of {who}: {size:,} characters, ~{self.tokens:,} tokens (characters / "
                 f"{CHARS_PER_TOKEN}); cacheable prefix ~{self.tokens_cacheable:,} tokens "
                 f"({100 * self.tokens_cacheable / max(self.tokens, 1):.0f} %)"]
        if self.sends_requests and self.usd_uncached is None:
            lines.append(f"price of {self.model!r} unknown to genai-prices: give input_usd_per_mtok and "
                         "output_usd_per_mtok under [agent]")
        elif self.sends_requests:
            lines.append(f"input cost with {self.model}: ${self.usd_uncached:.4f} uncached, ${self.usd_cached:.4f} "
                         "with the prefix read from the prompt cache (the next request, while the cache holds it)")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"agent": self.agent, "model": self.model, "sends_requests": self.sends_requests,
                "system": self.system, "stable": self.stable, "changing": self.changing,
                "tokens": self.tokens, "tokens_cacheable": self.tokens_cacheable,
                "usd_uncached": self.usd_uncached, "usd_cached": self.usd_cached}


def preview_request(snapshot: Snapshot, settings: AgentSettings) -> RequestPreview:
    """The request a resolved [agent] would send to propose on `snapshot`, priced."""
    parts = build_request(snapshot, settings.context_tokens)
    stable = "".join(part["text"] for part in parts if part["cache"])
    changing = "".join(part["text"] for part in parts if not part["cache"])
    model, pricing = model_and_pricing(settings)
    sends = settings.provider in SENDS_REQUESTS
    unpriced = RequestPreview(agent=proposer_name(settings), model=model, system=system_prompt(snapshot.task),
                              stable=stable, changing=changing, usd_uncached=None, usd_cached=None,
                              sends_requests=sends)
    if not sends:
        return unpriced
    return replace(unpriced, usd_uncached=pricing.cost(model, unpriced.tokens, 0),
                   usd_cached=pricing.cost(model, unpriced.tokens, 0, tokens_cached=unpriced.tokens_cacheable))

def _tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN

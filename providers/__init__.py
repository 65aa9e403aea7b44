"""Wire formats: one adapter per provider API, and the emulator that serves them all."""

from __future__ import annotations

from providers.base import ConfigError, Provider

__all__ = ["DEFAULT_MODELS", "PROVIDER_NAMES", "make_provider"]

PROVIDER_NAMES = ("emulator", "openai", "gemini", "anthropic")

# The model a provider is asked for when none is named: a current, inexpensive
# vision model of each. The emulator answers to the same names as the providers.
DEFAULT_MODELS = {
    "emulator": "gpt-4o-mini",
    "openai": "gpt-4o-mini",
    "gemini": "gemini-2.5-flash",
    "anthropic": "claude-haiku-4-5",
}


def make_provider(
    name: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    wire: str = "openai",
) -> Provider:
    """Build a provider adapter by name.

    Args:
        name: ``emulator``, ``openai`` (and any OpenAI-compatible server named by
            ``base_url``), ``gemini`` or ``anthropic``.
        base_url: The server's root; the provider's own API when None. For the
            emulator, the root of a running emulator (required).
        api_key: The key; read from the provider's environment variable when None.
        wire: For the emulator, which wire format to speak to it.

    Raises:
        ConfigError: The name is unknown, or the provider cannot be set up.
    """
    if name == "emulator":
        return _emulator(base_url, wire)
    if name == "openai":
        from providers.openai import OpenAIProvider

        return OpenAIProvider(base_url, api_key)
    if name == "gemini":
        from providers.gemini import GeminiProvider

        return GeminiProvider(base_url, api_key)
    if name == "anthropic":
        from providers.anthropic import AnthropicProvider

        return AnthropicProvider(base_url, api_key)
    raise ConfigError(
        f"unknown provider {name!r}; choose one of {', '.join(PROVIDER_NAMES)}"
    )


def _emulator(base_url: str | None, wire: str) -> Provider:
    if not base_url:
        raise ConfigError(
            "the emulator provider needs the base URL of a running emulator"
        )
    root = base_url.rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    # The emulator's answers do not depend on its address or port, so its cache
    # identity leaves them out: a rerun against a new emulator process is free.
    identity = f"emulator/{wire}"
    if wire == "openai":
        from providers.openai import OpenAIProvider

        return OpenAIProvider(f"{root}/v1", "", identity=identity)
    if wire == "gemini":
        from providers.gemini import GeminiProvider

        return GeminiProvider(root, "", identity=identity)
    if wire == "anthropic":
        from providers.anthropic import AnthropicProvider

        return AnthropicProvider(root, "", identity=identity)
    raise ConfigError(
        f"unknown wire format {wire!r}; choose openai, gemini or anthropic"
    )

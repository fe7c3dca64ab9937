"""ccgate: a self-hosted API gateway for Anthropic's Claude models."""

__version__ = "0.1.0"

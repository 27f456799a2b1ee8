"""Leadvault: privacy-first, self-hosted lead capture and consent."""

__version__ = "0.1.0"

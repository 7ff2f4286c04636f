"""What a server serves and the limits it enforces, as plain data (the CLI and Ray replicas build the same)."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EdgevoiceError

# Model and voice names end up in URLs, file names and metric labels: letters, digits, '_' and '-' (plus '.'
# inside model names such as "tts-1.5"), never a path.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
VOICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
API_KEY_ENV = "EDGEVOICE_API_KEY"
MIN_API_KEY_CHARS = 8


class ConfigError(EdgevoiceError):
    """A server configuration that cannot be served (duplicate model names, unsafe binding)."""


@dataclass(frozen=True)
class Limits:
    """Per-request and per-model bounds; every one is checked before any synthesis starts."""

    max_body_bytes: int = 64 * 1024  # a JSON request
    max_text_chars: int = 4096  # OpenAI's limit on `input`
    max_upload_bytes: int = 20 * 1024 * 1024  # a reference clip (multipart body)
    max_upload_seconds: float = 120.0  # MetaVoice wants ≥ 30 s of reference; nothing needs more than minutes
    max_audio_seconds: float = 600.0  # audio produced per request; a stream ends there
    queue_size: int = 16  # requests that may wait per model once every synthesizer is busy (then 429)
    queue_timeout: float = 30.0  # seconds a request may wait for a synthesizer (then 503)

    def __post_init__(self):
        for name, value in vars(self).items():
            if not value > 0 and not (name == "queue_size" and value == 0):
                raise ConfigError(f"limit {name} must be positive, not {value}")


@dataclass(frozen=True)
class ServerConfig:
    bundles: dict[str, Path]  # model name → bundle folder
    voices_dir: Path | None = None
    workers: int = 1  # synthesizers per model: that many requests per model run at once
    threads: int | None = None  # CPU threads per synthesizer (default: the cores shared among all of them)
    backend: str = "openvino"
    limits: Limits = field(default_factory=Limits)
    api_key: str | None = None
    title: str = "edgevoice"
    cache_dir: str | bool | None = True  # OpenVINO's compiled graphs: True = the user's cache folder, None = none

    def __post_init__(self):
        if not self.bundles:
            raise ConfigError("give at least one --bundle")
        for name in self.bundles:
            if not MODEL_NAME.fullmatch(name):
                raise ConfigError(f"model name {name!r}: use letters, digits, '.', '_' and '-' (at most 64)")
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, not {self.workers}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be at least 1, not {self.threads}")
        if self.api_key is not None and len(self.api_key) < MIN_API_KEY_CHARS:
            raise ConfigError(f"--api-key needs at least {MIN_API_KEY_CHARS} characters (a short key is guessed)")

    def synthesizer_threads(self) -> int:
        """Threads per synthesizer: the given number, else the cores divided among every synthesizer."""
        if self.threads is not None:
            return self.threads
        return max(1, (os.cpu_count() or 1) // (self.workers * len(self.bundles)))


def model_names(bundles: list[str]) -> dict[str, Path]:
    """`--bundle` values, `DIR` or `NAME=DIR`, as model name → folder; a bare folder is named after itself."""
    named: dict[str, Path] = {}
    for value in bundles:
        name, sep, folder = value.partition("=")
        if not sep or not MODEL_NAME.fullmatch(name):
            name, folder = Path(value).resolve().name, value
        if name in named:
            raise ConfigError(f"two bundles are named {name!r}: name them with --bundle NAME=DIR")
        named[name] = Path(folder)
    return named


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_binding(host: str, api_key: str | None, insecure: bool) -> None:
    """Loopback is safe by default; any other address needs an API key or an explicit --insecure."""
    if not is_loopback(host) and api_key is None and not insecure:
        raise ConfigError(f"--host {host} is reachable from other machines: give --api-key (or set "
                          f"{API_KEY_ENV}), or --insecure to serve without one")

"""`edgevoice serve` (joins the CLI through the `edgevoice.commands` entry point). Only click is imported here, so
the command's help works without the `serve` extra and a missing extra is a one-line error."""

from __future__ import annotations

import click

from ..cli import cache_options, chosen_cache_dir
from ..backends import BACKEND_NAMES
from ..errors import EdgevoiceError
from .config import API_KEY_ENV, MIN_API_KEY_CHARS, Limits

BACKENDS = click.Choice(BACKEND_NAMES)
DEFAULT_LIMITS = Limits()


def _fail_without(extra: str, error: ImportError) -> None:
    raise click.ClickException(f"'serve{' --ray' if extra == 'cluster' else ''}' needs the {extra} extra "
                               f"({error.name or error} is missing): pip install 'edgevoice[{extra}]'")


@click.command()
@click.option("--bundle", "bundles", multiple=True, required=True, metavar="[NAME=]DIR",
              help="a bundle to serve (repeatable); its model name is NAME, else the folder's name")
@click.option("--voices", "voices_dir", type=click.Path(file_okay=False), default=None,
              help="folder of voice files (<name>.npz): listed, used by name, and where uploaded voices are kept")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to bind; anything but loopback needs --api-key or --insecure")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True,
              help="synthesizers per model: requests one model runs at once (each holds its own copy)")
@click.option("--threads", type=int, default=None, help="CPU threads per synthesizer [default: cores / synthesizers]")
@click.option("--backend", type=BACKENDS, default="openvino", show_default=True)
@click.option("--api-key", envvar=API_KEY_ENV, default=None,
              help=f"require 'Authorization: Bearer KEY' on the API (or set {API_KEY_ENV}); at least "
                   f"{MIN_API_KEY_CHARS} characters")
@click.option("--insecure", is_flag=True, help="allow a non-loopback --host without an API key")
@click.option("--queue-size", type=int, default=DEFAULT_LIMITS.queue_size, show_default=True,
              help="requests that may wait per model when all its synthesizers are busy; more get 429")
@click.option("--queue-timeout", type=float, default=DEFAULT_LIMITS.queue_timeout, show_default=True,
              help="seconds a request may wait for a synthesizer; then 503")
@click.option("--max-text-chars", type=int, default=DEFAULT_LIMITS.max_text_chars, show_default=True)
@click.option("--max-audio-seconds", type=float, default=DEFAULT_LIMITS.max_audio_seconds, show_default=True,
              help="audio produced per request; longer speech is cut there")
@click.option("--max-upload-mb", type=float, default=DEFAULT_LIMITS.max_upload_bytes / 2 ** 20, show_default=True,
              help="largest reference clip upload")
@click.option("--max-upload-seconds", type=float, default=DEFAULT_LIMITS.max_upload_seconds, show_default=True)
@click.option("--max-connections", type=int, default=1000, show_default=True,
              help="open connections uvicorn accepts before answering 503")
@click.option("--ray", "use_ray", is_flag=True, help="serve on Ray Serve (the cluster extra) instead of uvicorn")
@click.option("--replicas", type=int, default=1, show_default=True, help="--ray: replicas, each with its models")
@click.option("--min-replicas", type=int, default=None, help="--ray: autoscale from this many replicas...")
@click.option("--max-replicas", type=int, default=None, help="--ray: ...up to this many")
@click.option("--target-ongoing-requests", type=float, default=None,
              help="--ray: autoscaling aims at this many requests per replica [default: --workers]")
@click.option("--address", default=None, help="--ray: the cluster to join (ray://HOST:10001 or HOST:6379); "
                                               "default: start a local Ray instance")
@click.option("--num-cpus", type=float, default=None, help="--ray: CPUs each replica reserves [default: --workers]")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info",
              show_default=True)
@cache_options
def serve(bundles, voices_dir, host, port, workers, threads, backend, api_key, insecure, queue_size, queue_timeout,
          max_text_chars, max_audio_seconds, max_upload_mb, max_upload_seconds, max_connections, use_ray, replicas,
          min_replicas, max_replicas, target_ongoing_requests, address, num_cpus, log_level, cache_dir, no_cache):
    """Serve bundles over HTTP: OpenAI's POST /v1/audio/speech, /v1/models, /v1/voices, /healthz, /metrics, and
    a web page at /."""
    from pathlib import Path

    from .config import ServerConfig, check_binding, model_names

    try:
        check_binding(host, api_key, insecure)
        limits = Limits(max_text_chars=max_text_chars, max_audio_seconds=max_audio_seconds,
                        max_upload_bytes=int(max_upload_mb * 2 ** 20), max_upload_seconds=max_upload_seconds,
                        queue_size=queue_size, queue_timeout=queue_timeout)
        config = ServerConfig(model_names(list(bundles)), Path(voices_dir) if voices_dir else None, workers, threads,
                              backend, limits, api_key, cache_dir=chosen_cache_dir(cache_dir, no_cache))
        if use_ray:
            _serve_on_ray(config, host, port, replicas, min_replicas, max_replicas, target_ongoing_requests,
                          address, num_cpus)
        else:
            _serve_here(config, host, port, max_connections, log_level)
    except EdgevoiceError as exc:
        raise click.ClickException(str(exc)) from None


def _serve_here(config, host: str, port: int, max_connections: int, log_level: str) -> None:
    try:
        import uvicorn

        from .app import create_app
    except ImportError as exc:
        _fail_without("serve", exc)
    app = create_app(config)
    click.echo(f"serving {', '.join(config.bundles)} on http://{host}:{port}/ "
               f"({config.workers} synthesizer(s) per model)", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, limit_concurrency=max_connections,
                timeout_graceful_shutdown=5)


def _serve_on_ray(config, host: str, port: int, replicas: int, min_replicas, max_replicas, target, address,
                  num_cpus) -> None:
    try:
        from .ray_app import RayOptions, run_on_ray
    except ImportError as exc:
        _fail_without("cluster", exc)
    options = RayOptions(replicas=replicas, min_replicas=min_replicas, max_replicas=max_replicas,
                         target_ongoing_requests=target, num_cpus=num_cpus, host=host, port=port, address=address)
    try:
        run_on_ray(config, options, block=True)
    except KeyboardInterrupt:  # Ctrl-C is how a blocking Serve run ends; a private Ray instance ends with us
        click.echo("stopped", err=True)

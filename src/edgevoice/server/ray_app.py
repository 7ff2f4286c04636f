"""The same application on Ray Serve (the `cluster` extra): N replicas, each loading its own models and building
`create_app` at replica start, behind Ray's HTTP proxy, which spreads requests over them (and autoscaling, when
asked for, adds and removes replicas with the load).

Every replica reads the bundles (and the voices folder) at the paths given, so on a cluster they must exist at the
same paths on every node (a shared or copied folder). Each replica answers with its id in `X-Edgevoice-Instance`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .config import ServerConfig

APP_NAME = "edgevoice"


@dataclass(frozen=True)
class RayOptions:
    replicas: int = 1
    min_replicas: int | None = None  # autoscaling when min/max are given
    max_replicas: int | None = None
    target_ongoing_requests: float | None = None  # default: the replica's synthesizers
    num_cpus: float | None = None  # CPUs a replica reserves; default: its synthesizers
    host: str = "127.0.0.1"
    port: int = 8000
    address: str | None = None  # None: start a local Ray instance on loopback

    def deployment_options(self, config: ServerConfig) -> dict:
        synthesizers = config.workers * len(config.bundles)
        options = {
            "ray_actor_options": {"num_cpus": self.num_cpus if self.num_cpus is not None else config.workers},
            # a replica takes what its synthesizers and its own queue hold; beyond that, Ray's proxy routes
            # elsewhere or waits, so the replica's 429 means the whole deployment is full
            "max_ongoing_requests": synthesizers + config.limits.queue_size,
        }
        if self.min_replicas is not None or self.max_replicas is not None:
            low = self.min_replicas if self.min_replicas is not None else 1
            options["autoscaling_config"] = {
                "min_replicas": low, "max_replicas": max(low, self.max_replicas or low),
                "target_ongoing_requests": self.target_ongoing_requests or config.workers,
            }
        else:
            options["num_replicas"] = self.replicas
        return options


class EdgevoiceReplica:
    """One replica: its models and the FastAPI app, built when Ray starts it."""

    def __init__(self, config: ServerConfig):
        from ray import serve

        self.config = config
        self.instance = serve.get_replica_context().replica_id.unique_id

    def __serve_build_asgi_app__(self):
        from .app import create_app

        return create_app(self.config, instance=self.instance)


def build_application(config: ServerConfig, options: RayOptions):
    """The Ray Serve application (not yet running): `serve.run` it, or let `run_on_ray` do so."""
    from ray import serve

    portable = dataclasses.replace(config, bundles={n: Path(p).resolve() for n, p in config.bundles.items()},
                                   voices_dir=Path(config.voices_dir).resolve() if config.voices_dir else None)
    replica = serve.deployment(serve.ingress()(EdgevoiceReplica), name=APP_NAME,
                               **options.deployment_options(config))
    return replica.bind(portable)


def run_on_ray(config: ServerConfig, options: RayOptions, block: bool = False):
    """Connect to (or start) Ray, start Serve's HTTP proxy on `host:port` and deploy; with `block`, serve until
    interrupted. Returns the application's handle. (The caller checked the binding: `config.check_binding`.)"""
    import ray
    from ray import serve

    if not ray.is_initialized():
        if options.address:
            ray.init(address=options.address)
        else:  # a private instance: every service on loopback, no dashboard
            ray.init(_node_ip_address="127.0.0.1", include_dashboard=False)
    serve.start(http_options={"host": options.host, "port": options.port})
    return serve.run(build_application(config, options), name=APP_NAME, route_prefix="/", blocking=block)

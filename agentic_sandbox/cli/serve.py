"""``sandboxctl serve``: settings from the environment, overlaid with the options given."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path

from agentic_sandbox.cli.client import CliError
from agentic_sandbox.cli.options import LOG_LEVELS
from agentic_sandbox.controller.config import Settings

ServeFunction = Callable[[Settings], int]


def settings_from_options(
    args: argparse.Namespace, env: Mapping[str, str] | None = None
) -> Settings:
    """Read settings from the environment, then apply every option given on the command line.

    Raises CliError when an environment variable has an invalid value.
    """
    try:
        settings = Settings.from_env(env)
    except ValueError as error:
        raise CliError(f"invalid environment: {error}") from error

    if args.state_dir is not None:
        settings.state_dir = Path(args.state_dir)
    if args.manifests is not None:
        settings.manifests_dir = Path(args.manifests)
    if args.loadout_dir is not None:
        settings.loadout_dir = Path(args.loadout_dir)
    if args.libvirt_uri is not None:
        settings.set_libvirt_uri(args.libvirt_uri)
    if args.vm_dir is not None:
        settings.vm_dir = Path(args.vm_dir)
    if args.host is not None:
        settings.host = args.host
    if args.port is not None:
        settings.port = args.port
    if args.grpc_port is not None:
        settings.grpc_port = args.grpc_port
    if args.token_file is not None:
        settings.token_file = Path(args.token_file)
    if args.docker_host is not None:
        settings.docker_host = args.docker_host
    if args.log_level is not None:
        settings.log_level = args.log_level
    if args.controller_id is not None:
        settings.controller_id = args.controller_id
    if args.allow_docker_socket:
        settings.allow_docker_socket = True
    if args.allowed_mount_roots:
        settings.allowed_mount_roots = [Path(root) for root in args.allowed_mount_roots]
    if args.workers is not None:
        settings.workers = args.workers

    settings.log_level = settings.log_level.lower()
    if settings.log_level not in LOG_LEVELS:
        raise CliError(
            f"AGENTIC_SANDBOX_LOG_LEVEL={settings.log_level!r} is invalid; "
            f"expected one of: {', '.join(LOG_LEVELS)}"
        )
    return settings


def run_serve(args: argparse.Namespace, serve: ServeFunction | None) -> int:
    settings = settings_from_options(args)
    if serve is None:
        raise CliError("'serve' is not available in this entry point; run the sandboxctl program")
    return serve(settings)

"""The address containers reach the host at: the gateway of Docker's default bridge network.

Containers resolve ``host.docker.internal`` (added as ``host-gateway``) to this address unless
the daemon sets ``host-gateway-ip``. The agent server listens there, and on loopback, rather
than on every interface.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging

import docker
import requests
from docker.errors import DockerException
from docker.utils import kwargs_from_env

logger = logging.getLogger(__name__)


def _read_gateway(base_url: str | None, timeout: int) -> str | None:
    if base_url is None:
        client = docker.APIClient(version="auto", timeout=timeout, **kwargs_from_env())
    else:
        client = docker.APIClient(base_url=base_url, version="auto", timeout=timeout)
    try:
        network = client.inspect_network("bridge")
    finally:
        client.close()
    for config in (network.get("IPAM") or {}).get("Config") or []:
        gateway = str(config.get("Gateway") or "")
        try:
            if ipaddress.ip_address(gateway).version == 4:
                return gateway
        except ValueError:
            continue
    return None


async def bridge_gateway(base_url: str | None, *, call_seconds: int = 10) -> str | None:
    """Return the IPv4 gateway of the ``bridge`` network, or None when Docker cannot tell."""
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(_read_gateway, base_url, call_seconds), call_seconds + 1
        )
    except (DockerException, requests.RequestException, TimeoutError) as error:
        logger.warning("docker bridge gateway unknown error=%s", error)
        return None

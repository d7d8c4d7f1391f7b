"""The cloud-init NoCloud seed of a virtual machine: user-data, meta-data, network-config.

Standard cloud images run cloud-init at boot, which finds a file system labelled ``cidata``
and provisions the guest from the three files on it. The ``build_*`` functions are pure;
only ``build_seed_iso`` writes a file.

cloud-init reads its files with PyYAML, which follows YAML 1.1: an unquoted ``no`` becomes
False and ``0755`` becomes 493. So every string in the generated YAML is quoted (or written
as a literal block), and each document is checked by loading it back under both YAML 1.1 and
YAML 1.2 before it is returned.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pycdlib
from ruamel.yaml import YAML
from ruamel.yaml.representer import SafeRepresenter

from agentic_sandbox.crds.instance import ENV_NAME
from agentic_sandbox.crds.loadout import NetworkMode
from agentic_sandbox.crds.loadout_merge import ResolvedLoadout

USER_DATA = "user-data"
META_DATA = "meta-data"
NETWORK_CONFIG = "network-config"
SEED_FILES = (USER_DATA, META_DATA, NETWORK_CONFIG)
SEED_VOLUME_ID = "cidata"

# The guest's environment file, readable by root only because it contains the agent's secret.
# Each line is NAME='value', single-quoted for a POSIX shell, so ``set -a; . FILE`` reads
# every value back unchanged.
ENV_FILE_PATH = "/etc/agentic-sandbox/env"
ENV_FILE_PERMISSIONS = "0600"
ENV_FILE_OWNER = "root:root"

_CLOUD_CONFIG_HEADER = "#cloud-config\n"
_HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# An ISO 9660 level 1 name (8.3, upper case) that each seed file also gets, for readers that
# ignore Joliet and Rock Ridge.
_ISO9660_NAMES = {
    USER_DATA: "/USERDATA.;1",
    META_DATA: "/METADATA.;1",
    NETWORK_CONFIG: "/NETWORKC.;1",
}


class _QuotingRepresenter(SafeRepresenter):
    """Represent every string quoted, or as a literal block when it has several lines."""


def _represent_str(representer: SafeRepresenter, value: str) -> Any:
    # A block or quoted scalar is never typed, so YAML 1.1 and 1.2 both read a string back.
    # A literal block turns any line break into "\n", so a value with "\r" or another
    # control character is double-quoted, where it is escaped.
    in_block = all(c == "\n" or c == "\t" or c.isprintable() for c in value)
    style = "|" if "\n" in value and in_block else '"'
    return representer.represent_scalar("tag:yaml.org,2002:str", value, style=style)


# On the subclass, so that other users of SafeRepresenter keep its plain strings.
_QuotingRepresenter.add_representer(str, _represent_str)


def _dumper() -> YAML:
    yaml = YAML(typ="safe", pure=True)
    yaml.Representer = _QuotingRepresenter
    yaml.default_flow_style = False
    yaml.width = 4096
    # Keep keys in the order this module inserts them.
    yaml.representer.sort_base_mapping_type_on_output = False
    return yaml


def _dump(data: dict[str, Any]) -> str:
    stream = io.StringIO()
    _dumper().dump(data, stream)
    text = stream.getvalue()
    _check_round_trip(text, data)
    return text


def _check_round_trip(text: str, data: dict[str, Any]) -> None:
    """Raise AssertionError unless ``text`` loads back as ``data`` under YAML 1.1 and 1.2."""
    as_yaml_1_2 = YAML(typ="safe", pure=True).load(text)
    as_yaml_1_1 = YAML(typ="safe", pure=True).load("%YAML 1.1\n---\n" + text)
    if as_yaml_1_2 != data or as_yaml_1_1 != data:
        raise AssertionError("generated cloud-init YAML does not load back as the data dumped")


def merged_env(
    loadout: ResolvedLoadout, *, env: dict[str, str], agent_env: dict[str, str]
) -> dict[str, str]:
    """Merge env by precedence: the loadout's, then the instance's, then the agent's."""
    merged = {name: value for name, value in (loadout.spec.env or {}).items() if value is not None}
    merged.update(env)
    merged.update(agent_env)
    return merged


def render_env_file(env: dict[str, str]) -> str:
    """Render ``env`` as NAME='value' lines, sorted by name.

    Raises ValueError for a name that is not a shell variable name, because the file is
    read by a shell and a name is written unquoted.
    """
    invalid = sorted(name for name in env if not ENV_NAME.match(name))
    if invalid:
        raise ValueError(
            f"env names {invalid} are invalid; use letters, digits and '_', not starting "
            "with a digit"
        )
    return "".join(f"{name}={_single_quote(env[name])}\n" for name in sorted(env))


def _single_quote(value: str) -> str:
    # shlex.quote leaves words such as no or 0755 unquoted, and a file that quotes every
    # value is easier to read.
    return "'" + value.replace("'", "'\"'\"'") + "'"


def build_user_data(
    loadout: ResolvedLoadout, *, env: dict[str, str], agent_env: dict[str, str]
) -> str:
    """Build the ``#cloud-config`` user-data that provisions the loadout.

    ``env`` is the instance's env and ``agent_env`` what the controller injects (it may hold a
    secret). Both override the loadout's env, and all of it goes to ``ENV_FILE_PATH``.
    Packages, files and ``runcmd`` keep the order of the merged loadout. Raises ValueError
    when a loadout file has the environment file's path.
    """
    spec = loadout.spec
    config: dict[str, Any] = {}
    if spec.packages:
        config["packages"] = list(spec.packages)

    write_files: list[dict[str, Any]] = []
    for item in spec.write_files or []:
        if item.path == ENV_FILE_PATH:
            raise ValueError(
                f"loadout {loadout.name!r} writes {ENV_FILE_PATH}, which contains the sandbox env; "
                "set env instead of writing that file"
            )
        entry: dict[str, Any] = {
            "path": item.path,
            "content": item.content,
            "permissions": item.permissions,
        }
        if item.owner is not None:
            entry["owner"] = item.owner
        write_files.append(entry)
    write_files.append(
        {
            "path": ENV_FILE_PATH,
            "content": render_env_file(merged_env(loadout, env=env, agent_env=agent_env)),
            "permissions": ENV_FILE_PERMISSIONS,
            "owner": ENV_FILE_OWNER,
        }
    )
    config["write_files"] = write_files

    if spec.runcmd:
        config["runcmd"] = [cmd if isinstance(cmd, str) else list(cmd) for cmd in spec.runcmd]
    return _CLOUD_CONFIG_HEADER + _dump(config)


def build_meta_data(instance_id: str, hostname: str) -> str:
    """Build the meta-data. cloud-init runs its once-per-instance steps again for a new id."""
    if not instance_id or any(c.isspace() for c in instance_id):
        raise ValueError(f"instance id {instance_id!r} is empty or contains white space")
    if not _HOSTNAME.match(hostname):
        raise ValueError(f"hostname {hostname!r} is not a DNS-1123 label")
    return _dump({"instance-id": instance_id, "local-hostname": hostname})


def build_network_config(mode: NetworkMode) -> str:
    """Build the network-config (version 2): DHCP on the first NIC, or disabled when isolated.

    An isolated guest has no NIC, and ``config: disabled`` stops cloud-init from waiting for
    one with its fallback configuration.
    """
    if mode == NetworkMode.ISOLATED:
        return _dump({"config": "disabled"})
    # virtio NICs are named eth0, ens3 or enp1s0 depending on the guest's naming scheme.
    first_nic = {"match": {"name": "e*"}, "dhcp4": True}
    return _dump({"version": 2, "ethernets": {"primary": first_nic}})


def build_seed_iso(path: str | os.PathLike[str], files: dict[str, bytes]) -> None:
    """Write the NoCloud seed ISO 9660 image, volume id ``cidata``, with Joliet and Rock Ridge.

    ``files`` maps seed file names (``SEED_FILES``) to their content. The image is written to
    a temporary file in the same directory, with mode 0600 because user-data may hold a
    secret, and renamed over ``path``, so a reader never sees a half-written image.
    """
    unknown = sorted(set(files) - set(SEED_FILES))
    if unknown:
        raise ValueError(f"seed files {unknown} are not NoCloud files; expected {SEED_FILES}")

    iso = pycdlib.PyCdlib()
    iso.new(joliet=3, rock_ridge="1.09", vol_ident=SEED_VOLUME_ID)
    try:
        for name in SEED_FILES:
            if name not in files:
                continue
            content = files[name]
            iso.add_fp(
                io.BytesIO(content),
                len(content),
                _ISO9660_NAMES[name],
                rr_name=name,
                joliet_path=f"/{name}",
            )
        _write_atomically(iso, Path(path))
    finally:
        iso.close()


def _write_atomically(iso: pycdlib.PyCdlib, path: Path) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as file:
            iso.write_fp(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

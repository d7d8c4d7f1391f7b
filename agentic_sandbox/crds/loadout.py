"""The Loadout kind: a virtual machine profile that Instances name in ``spec.loadout``.

A loadout can extend other loadouts (``spec.extends``), so one loadout is often only a layer:
every spec field is optional, and an explicit ``null`` means "unset the value this loadout
inherits". The layer as written, with its explicit nulls, is ``LoadoutSpec.written()``;
``loadout_merge.resolve`` merges those layers into the complete profile.
"""

from __future__ import annotations

import posixpath
import re
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator

from agentic_sandbox.crds.instance import DEFAULT_CPUS, DEFAULT_MEMORY, EnvName, EnvValue
from agentic_sandbox.crds.meta import Model, Resource, check_dns1123_label
from agentic_sandbox.crds.quantity import parse_cpus, parse_memory

KIND = "Loadout"

# File modes as cloud-init's write_files takes them: three or four octal digits, as a string.
PERMISSIONS = re.compile(r"^[0-7]{3,4}$")
DEFAULT_PERMISSIONS = "0644"
DEFAULT_READINESS_TIMEOUT_SECONDS = 300
MAX_READINESS_TIMEOUT_SECONDS = 86400


class NetworkMode(StrEnum):
    """Network attachment of the virtual machine: user-mode networking, none, or libvirt's."""

    USER = "user"
    ISOLATED = "isolated"
    LIBVIRT = "libvirt"


def _check_loadout_name(name: str) -> str:
    return check_dns1123_label(name, "loadout name")


LoadoutName = Annotated[str, AfterValidator(_check_loadout_name)]


def _check_absolute(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"path {value!r} is not absolute; write it starting with '/'")
    if "\x00" in value:
        raise ValueError("path contains a NUL character")
    return "/" + posixpath.normpath(value).lstrip("/")


class LoadoutResources(Model):
    """CPU count, memory and disk size of the virtual machine."""

    cpus: float | None = DEFAULT_CPUS
    memory: str | None = DEFAULT_MEMORY
    disk: str | None = None

    @field_validator("cpus", mode="before")
    @classmethod
    def _check_cpus(cls, value: Any) -> float | None:
        return None if value is None else parse_cpus(value)

    @field_validator("memory", "disk", mode="before")
    @classmethod
    def _check_size(cls, value: Any) -> Any:
        if value is None:
            return value
        parse_memory(value)
        return str(value)


class WriteFile(Model):
    """One file that cloud-init writes into the guest before it runs ``runcmd``."""

    path: Annotated[str, AfterValidator(_check_absolute)]
    content: str = ""
    permissions: str = DEFAULT_PERMISSIONS
    owner: str | None = None

    @field_validator("permissions", mode="before")
    @classmethod
    def _check_permissions(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML reads an unquoted 0644 as the decimal integer 644, so the number is ambiguous.
            raise ValueError(
                f"permissions {value!r} is a number; write the octal mode as a string, "
                "for example '0644'"
            )
        if isinstance(value, str) and not PERMISSIONS.match(value):
            raise ValueError(
                f"permissions {value!r} is not an octal file mode; write three or four octal "
                "digits, for example '0644' or '0755'"
            )
        return value


def _check_command(value: Any) -> Any:
    # Checked before the union so that a wrong item gets one message, not one per union member.
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not all(isinstance(part, str) for part in value):
        raise ValueError(
            f"runcmd item {value!r} is neither a string nor a list of strings; write a shell "
            "command such as 'apt-get update' or a list such as ['mkdir', '-p', '/srv']"
        )
    if not value:
        raise ValueError("runcmd item is an empty list; write the command and its arguments")
    return value


RunCommand = Annotated[str | list[str], BeforeValidator(_check_command)]


class LoadoutNetwork(Model):
    mode: NetworkMode | None = NetworkMode.USER


class Readiness(Model):
    timeout_seconds: int | None = Field(
        default=DEFAULT_READINESS_TIMEOUT_SECONDS, ge=1, le=MAX_READINESS_TIMEOUT_SECONDS
    )


class LoadoutSpec(Model):
    """One loadout layer. Unset fields are inherited; an explicit null unsets an inherited one."""

    extends: list[LoadoutName] | None = None
    resources: LoadoutResources | None = None
    # A path to a disk image on this machine, or an image reference.
    base_image: str | None = None
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    packages: list[str] | None = None
    write_files: list[WriteFile] | None = None
    runcmd: list[RunCommand] | None = None
    # A null value unsets a variable that a parent loadout sets.
    env: dict[EnvName, EnvValue | None] | None = None
    network: LoadoutNetwork | None = None
    readiness: Readiness | None = None
    # True when the guest runs the agent (``sandbox-agent``), as the image label
    # dev.agentic.agent=true marks an agent image. Ready then waits for the agent to register.
    agent: bool | None = None

    @field_validator("base_image", "kernel", "initrd")
    @classmethod
    def _check_reference(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(c.isspace() for c in value)):
            raise ValueError(
                f"{value!r} is not a path or an image reference; write it without spaces"
            )
        return value

    @field_validator("packages")
    @classmethod
    def _check_packages(cls, value: list[str] | None) -> list[str] | None:
        for package in value or []:
            if not package or any(c.isspace() for c in package):
                raise ValueError(
                    f"package {package!r} is not a package name such as 'git' or 'curl=8.5.0-2'"
                )
        return value

    @field_validator("extends")
    @classmethod
    def _check_extends(cls, value: list[str] | None) -> list[str] | None:
        duplicates = sorted({name for name in value or [] if (value or []).count(name) > 1})
        if duplicates:
            raise ValueError(f"extends names the same loadout more than once: {duplicates}")
        return value

    def written(self) -> dict[str, Any]:
        """Return the fields this layer sets, by wire name, including its explicit nulls."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class Loadout(Resource):
    """A virtual machine profile: resources, base image, cloud-init provisioning, parents."""

    KIND: ClassVar[str] = KIND

    kind: Literal["Loadout"] = "Loadout"
    spec: LoadoutSpec = Field(default_factory=LoadoutSpec)

    def to_wire(self) -> dict[str, Any]:
        """Dump as the wire dict, keeping the spec's explicit nulls that unset inherited values."""
        wire = super().to_wire()
        wire["spec"] = self.spec.written()
        return wire

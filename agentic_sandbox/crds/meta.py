"""Object metadata and the common resource envelope shared by every kind.

Field names follow Kubernetes: Python attributes are snake_case and the wire form (YAML, JSON,
the store) is camelCase. Unknown fields are rejected everywhere.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

GROUP = "sandbox.agentic.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_LABEL_MAX = 63

# Label keys follow Kubernetes: an optional DNS-subdomain prefix, then a name of at most 63
# characters.
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

# Annotation recording which source wrote an object, for example "file:/srv/manifests/web.yaml".
SOURCE_ANNOTATION = f"{GROUP}/source"
# Finalizer that keeps an Instance record until its runtime objects are gone.
RUNTIME_FINALIZER = f"{GROUP}/runtime"
# Lifecycle verb requested through the API or sandboxctl: "start@TIME", "stop@TIME", "restart@TIME".
REQUESTED_ACTION_ANNOTATION = f"{GROUP}/requested-action"
# Run strategy an instance had before a stop verb set it to Halted; a start verb restores it.
PREVIOUS_RUN_STRATEGY_ANNOTATION = f"{GROUP}/previous-run-strategy"
# Grace period of the next stop in seconds, set by a stop verb with a timeout ("0" forces it off).
STOP_GRACE_ANNOTATION = f"{GROUP}/stop-grace-seconds"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Model(BaseModel):
    """Base of every wire model: camelCase aliases, unknown fields rejected."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        validate_assignment=False,
    )


def check_dns1123_label(value: str, what: str = "name") -> str:
    if len(value) > DNS1123_LABEL_MAX:
        raise ValueError(
            f"{what} {value!r} is {len(value)} characters long; the maximum is {DNS1123_LABEL_MAX}"
        )
    if not DNS1123_LABEL.match(value):
        raise ValueError(
            f"{what} {value!r} is not a DNS-1123 label; use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (for example 'web-1')"
        )
    return value


def check_label_key(key: str, field_name: str = "label") -> str:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _LABEL_PREFIX.match(prefix)):
        raise ValueError(f"{field_name} key {key!r} has an invalid prefix; use a DNS subdomain")
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        raise ValueError(
            f"{field_name} key {key!r} is invalid; use at most 63 letters, digits, '-', '_' "
            "or '.', starting and ending with a letter or digit, after an optional 'prefix/'"
        )
    return key


def check_label_value(value: str) -> str:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise ValueError(
            f"label value {value!r} is invalid; use at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return value


def _check_annotation_key(key: str) -> str:
    return check_label_key(key, "annotation")


LabelKey = Annotated[str, AfterValidator(check_label_key)]
LabelValue = Annotated[str, AfterValidator(check_label_value)]
AnnotationKey = Annotated[str, AfterValidator(_check_annotation_key)]


class ObjectMeta(Model):
    """Kubernetes-style object metadata. The server sets every field after ``annotations``."""

    name: str
    namespace: str = "default"
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    annotations: dict[AnnotationKey, str] = Field(default_factory=dict)
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    finalizers: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return check_dns1123_label(value, "name")

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        return check_dns1123_label(value, "namespace")


class ConditionStatus:
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(Model):
    """One status condition, following the Kubernetes convention."""

    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_transition_time: datetime | None = None
    observed_generation: int | None = None


class Resource(Model):
    """The envelope every kind shares: apiVersion, kind, metadata, spec, status."""

    KIND: ClassVar[str] = ""

    api_version: str = API_VERSION
    kind: str
    metadata: ObjectMeta
    spec: Any = None
    status: Any = None

    @property
    def key(self) -> str:
        """The ``namespace/name`` key used by the store, the queue and the logs."""
        return f"{self.metadata.namespace}/{self.metadata.name}"

    def to_wire(self) -> dict[str, Any]:
        """Dump as the camelCase JSON-compatible dict used on the wire and in the store."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def object_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def split_key(key: str) -> tuple[str, str]:
    namespace, _, name = key.partition("/")
    return namespace, name

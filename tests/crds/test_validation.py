"""Resource validation: field paths, quoted values, accepted values and hints."""

from __future__ import annotations

from typing import Any

import pytest

from agentic_sandbox.crds.documents import FieldPath
from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.crds.validation import validate_resource
from agentic_sandbox.errors import FieldError, InvalidResource, ManifestError
from tests.crds.support import instance_dict


def field_errors(data: object, **options: Any) -> list[FieldError]:
    with pytest.raises(InvalidResource) as caught:
        validate_resource(data, **options)
    return caught.value.errors


def only_error(data: object) -> FieldError:
    (error,) = field_errors(data)
    return error


def validate_instance(data: object) -> Instance:
    resource = validate_resource(data)
    assert isinstance(resource, Instance)
    return resource


def test_valid_instance_gets_defaults() -> None:
    instance = validate_instance(instance_dict())
    assert instance.metadata.namespace == "default"
    assert instance.spec.runtime == "docker"
    assert instance.spec.network == "bridge"
    assert instance.spec.resources.pids == 512


def test_api_version_wrong() -> None:
    error = only_error({**instance_dict(), "apiVersion": "v1"})
    assert error.path == "apiVersion"
    assert error.value == "v1"
    assert error.message == "'v1' is not served here; expected 'sandbox.agentic.dev/v1alpha1'"


def test_api_version_missing() -> None:
    data = instance_dict()
    del data["apiVersion"]
    assert "missing required field" in only_error(data).message


def test_kind_unknown() -> None:
    error = only_error({**instance_dict(), "kind": "Instanse"})
    assert error.path == "kind"
    assert error.message == (
        "'Instanse' is not a kind served here; expected 'GitSource' or 'Instance' or 'Loadout'"
    )


def test_not_a_mapping() -> None:
    assert "expected a mapping, got a list" in only_error(["a"]).message


def test_unknown_field_did_you_mean() -> None:
    data = instance_dict(imagee="x")
    error = only_error(data)
    assert error.path == "spec.imagee"
    assert error.render() == "spec.imagee: unknown field 'imagee'; did you mean 'image'?"


@pytest.mark.parametrize(
    ("mount", "path", "suggestion"),
    [
        ({"host_path": "/a", "path": "/b"}, "spec.mounts[0].host_path", "hostPath"),
        ({"hostpath": "/a", "path": "/b"}, "spec.mounts[0].hostpath", "hostPath"),
        ({"hostPath": "/a", "path": "/b", "readonly": True}, "spec.mounts[0].readonly", "readOnly"),
    ],
)
def test_unknown_nested_field_did_you_mean(
    mount: dict[str, Any], path: str, suggestion: str
) -> None:
    errors = field_errors(instance_dict(mounts=[mount]))
    unknown = [error for error in errors if error.path == path]
    assert len(unknown) == 1
    assert unknown[0].message.endswith(f"did you mean {suggestion!r}?")


def test_unknown_field_without_close_match_lists_fields() -> None:
    error = only_error(instance_dict(resources={"gpu": 1}))
    assert error.message == "unknown field 'gpu'; known fields are cpus, memory, disk, pids"


def test_unknown_top_level_field() -> None:
    error = only_error({**instance_dict(), "specs": {}})
    assert error.message == "unknown field 'specs'; did you mean 'spec'?"


def test_runtime_invalid_lists_accepted() -> None:
    error = only_error(instance_dict(runtime="dockr"))
    assert error.render() == "spec.runtime: 'dockr' is invalid; expected 'docker' or 'libvirt'"


def test_run_strategy_invalid_lists_accepted() -> None:
    message = only_error(instance_dict(runStrategy="Sometimes")).message
    assert message.startswith("'Sometimes' is invalid; expected 'Always', 'RerunOnFailure'")


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("a" * 64, "is 64 characters long; the maximum is 63"),
        ("Web", "is not a DNS-1123 label"),
        ("web_1", "is not a DNS-1123 label"),
        ("-web", "is not a DNS-1123 label"),
        ("web-", "is not a DNS-1123 label"),
        ("", "is not a DNS-1123 label"),
    ],
)
def test_name_must_be_dns1123_label(name: str, fragment: str) -> None:
    error = only_error({**instance_dict(), "metadata": {"name": name}})
    assert error.path == "metadata.name"
    assert fragment in error.message


def test_name_of_63_characters_accepted() -> None:
    assert validate_instance({**instance_dict(), "metadata": {"name": "a" * 63}})


def test_namespace_must_be_dns1123_label() -> None:
    error = only_error({**instance_dict(), "metadata": {"name": "web", "namespace": "Team"}})
    assert error.path == "metadata.namespace"


def test_name_missing() -> None:
    error = only_error({**instance_dict(), "metadata": {}})
    assert error.path == "metadata.name"
    assert error.message == "missing required field"


def test_mount_short_and_long_forms() -> None:
    mounts = [
        "/srv/data:/data",
        "/srv/ro:/ro:ro",
        "/srv/rw:/rw:rw",
        {"hostPath": "/a", "path": "/b"},
    ]
    instance = validate_instance(instance_dict(mounts=mounts))
    assert [(m.host_path, m.path, m.read_only) for m in instance.spec.mounts] == [
        ("/srv/data", "/data", False),
        ("/srv/ro", "/ro", True),
        ("/srv/rw", "/rw", False),
        ("/a", "/b", False),
    ]


def test_mount_paths_normalized() -> None:
    instance = validate_instance(instance_dict(mounts=["//srv/./data/:/data/../work"]))
    assert instance.spec.mounts[0].host_path == "/srv/data"
    assert instance.spec.mounts[0].path == "/work"


@pytest.mark.parametrize(
    ("mount", "path", "fragment"),
    [
        ("/a", "spec.mounts[0]", "is not in the form 'HOST_PATH:CONTAINER_PATH'"),
        ("/a:/b:rx", "spec.mounts[0]", "is not in the form"),
        ("/a:/b:ro:x", "spec.mounts[0]", "is not in the form"),
        ("rel:/b", "spec.mounts[0].hostPath", "path 'rel' is not absolute"),
        ("/a:rel", "spec.mounts[0].path", "path 'rel' is not absolute"),
        (5, "spec.mounts[0]", "is neither a mapping with hostPath and path nor a string"),
        ({"path": "/b"}, "spec.mounts[0].hostPath", "missing required field"),
        (
            {"hostPath": "/a", "path": "/b", "readOnly": "maybe"},
            "spec.mounts[0].readOnly",
            "is not a boolean",
        ),
    ],
)
def test_mount_bad_forms(mount: object, path: str, fragment: str) -> None:
    error = only_error(instance_dict(mounts=[mount]))
    assert error.path == path
    assert fragment in error.message


def test_mounts_not_a_list() -> None:
    error = only_error(instance_dict(mounts="/a:/b"))
    assert error.render() == "spec.mounts: expected a list, got '/a:/b'"


def test_mounts_same_target_rejected() -> None:
    error = only_error(instance_dict(mounts=["/a:/data", "/b:/data"]))
    assert error.path == "spec"
    assert "'/data'" in error.message


def test_command_as_string_rejected() -> None:
    error = only_error(instance_dict(command="sleep 60"))
    assert error.path == "spec.command"
    assert error.message == (
        "command 'sleep 60' is a string; write it as a list, for example ['sh', '-c', 'sleep 60']"
    )


def test_command_item_not_a_string() -> None:
    error = only_error(instance_dict(command=["sleep", 60]))
    assert error.path == "spec.command[1]"
    assert error.message == '60 is not a string; quote it: "60"'


@pytest.mark.parametrize("name", ["AGENT_ID", "AGENT_SECRET", "MANAGEMENT_SERVER"])
def test_reserved_env_name_rejected(name: str) -> None:
    error = only_error(instance_dict(env={name: "x"}))
    assert error.path == f"spec.env.{name}"
    assert error.message == f"env name {name!r} is set by the controller; remove it"


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", ""])
def test_invalid_env_name_rejected(name: str) -> None:
    error = only_error(instance_dict(env={name: "x"}))
    assert f"env name {name!r} is invalid" in error.message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, 'null is not a string; write "" for an empty string'),
        (8080, '8080 is not a string; quote it: "8080"'),
        (True, 'true is not a string; quote it: "true"'),
        (1.5, '1.5 is not a string; quote it: "1.5"'),
        ({"a": 1}, "a mapping is not a string"),
    ],
)
def test_env_value_must_be_string(value: object, message: str) -> None:
    error = only_error(instance_dict(env={"A": value}))
    assert error.path == "spec.env.A"
    assert error.value == value
    assert error.message == message


def test_env_value_with_nul_rejected() -> None:
    assert "NUL character" in only_error(instance_dict(env={"A": "a\x00b"})).message


def test_env_empty_string_accepted() -> None:
    assert validate_instance(instance_dict(env={"A": ""})).spec.env == {"A": ""}


@pytest.mark.parametrize(
    ("resources", "cpus", "memory_bytes"),
    [
        ({"cpus": 2}, 2.0, 2**30),
        ({"cpus": "500m"}, 0.5, 2**30),
        ({"cpus": "1.5"}, 1.5, 2**30),
        ({"memory": "512Mi"}, 1.0, 512 * 2**20),
        ({"memory": "2G"}, 1.0, 2 * 10**9),
        ({"memory": "1gib"}, 1.0, 2**30),
        ({"memory": 67108864}, 1.0, 64 * 2**20),
    ],
)
def test_resource_quantities_accepted(
    resources: dict[str, object], cpus: float, memory_bytes: int
) -> None:
    instance = validate_instance(instance_dict(resources=resources))
    assert instance.spec.resources.cpus == cpus
    assert instance.spec.resources.memory_bytes == memory_bytes


@pytest.mark.parametrize(
    ("resources", "path", "fragment"),
    [
        ({"cpus": "lots"}, "spec.resources.cpus", "cpus 'lots' is not a number"),
        ({"cpus": 0}, "spec.resources.cpus", "is out of range"),
        ({"cpus": 2000}, "spec.resources.cpus", "is out of range"),
        ({"cpus": True}, "spec.resources.cpus", "is not a number"),
        ({"memory": "1Q"}, "spec.resources.memory", "size '1Q' is invalid"),
        ({"memory": "1Mi"}, "spec.resources.memory", "is below the minimum of 6Mi"),
        ({"memory": "-1Gi"}, "spec.resources.memory", "is invalid"),
        ({"disk": "big"}, "spec.resources.disk", "size 'big' is invalid"),
        ({"pids": 4}, "spec.resources.pids", "pids 4 is too small"),
        ({"pids": "many"}, "spec.resources.pids", "'many' is not an integer"),
    ],
)
def test_resource_quantities_rejected(
    resources: dict[str, object], path: str, fragment: str
) -> None:
    error = only_error(instance_dict(resources=resources))
    assert error.path == path
    assert fragment in error.message


def test_grace_period_bounds() -> None:
    error = only_error(instance_dict(terminationGracePeriodSeconds=-1))
    assert error.message == "-1 is too small; the minimum is 0"
    error = only_error(instance_dict(terminationGracePeriodSeconds=4000))
    assert error.message == "4000 is too large; the maximum is 3600"


def test_docker_needs_image() -> None:
    data = instance_dict()
    del data["spec"]["image"]
    error = only_error(data)
    assert error.path == "spec"
    assert "runtime 'docker' needs an image" in error.message


def test_label_value_invalid() -> None:
    data = {**instance_dict(), "metadata": {"name": "web", "labels": {"app": "has space"}}}
    error = only_error(data)
    assert error.path == "metadata.labels.app"
    assert "label value 'has space' is invalid" in error.message


def test_label_key_invalid() -> None:
    data = {**instance_dict(), "metadata": {"name": "web", "labels": {"Bad_Prefix/x": "y"}}}
    error = only_error(data)
    assert error.path == "metadata.labels['Bad_Prefix/x']"
    assert "has an invalid prefix" in error.message


def test_annotation_key_invalid() -> None:
    data = {**instance_dict(), "metadata": {"name": "web", "annotations": {"a b": "free text"}}}
    assert "annotation key 'a b' is invalid" in only_error(data).message


def test_status_and_server_metadata_ignored() -> None:
    data = instance_dict()
    data["metadata"].update(
        uid="0b5c",
        generation=7,
        creationTimestamp="2024-01-01T00:00:00Z",
        deletionTimestamp="not even a time",
        resourceVersion="41",
    )
    data["status"] = {"phase": "Running", "anything": ["goes"]}
    instance = validate_instance(data)
    assert instance.metadata.uid is None
    assert instance.metadata.generation is None
    assert instance.metadata.creation_timestamp is None
    assert instance.metadata.deletion_timestamp is None
    assert instance.metadata.resource_version == "41"
    assert instance.status.phase == "Pending"
    assert data["status"] == {"phase": "Running", "anything": ["goes"]}
    assert data["metadata"]["uid"] == "0b5c"


def test_snake_case_names_rejected() -> None:
    error = only_error(instance_dict(run_strategy="Always"))
    assert (
        error.render()
        == "spec.run_strategy: unknown field 'run_strategy'; did you mean 'runStrategy'?"
    )


def test_all_errors_reported_with_lines() -> None:
    data = instance_dict(runtime="dockr", imagee="x")
    lines = {("spec",): 5, ("spec", "runtime"): 6, ("spec", "imagee"): 7}
    errors = field_errors(data, lines=lines)
    assert [(error.path, error.line) for error in errors] == [
        ("spec.runtime", 6),
        ("spec.imagee", 7),
    ]


def test_missing_field_line_falls_back_to_parent() -> None:
    data = {**instance_dict(), "metadata": {"labels": {}}}
    lines: dict[FieldPath, int] = {("metadata",): 3, ("metadata", "labels"): 4}
    (error,) = field_errors(data, lines=lines)
    assert error.line == 3


def test_source_makes_manifest_error() -> None:
    with pytest.raises(ManifestError) as caught:
        validate_resource(
            instance_dict(runtime="x"), source="web.yaml", lines={("spec", "runtime"): 9}
        )
    assert caught.value.file == "web.yaml"
    assert caught.value.line == 9
    assert str(caught.value).startswith("web.yaml:9: spec.runtime: 'x' is invalid")


def test_summary_counts_hidden_errors() -> None:
    data = instance_dict(runtime="a", network="b c", runStrategy="d", agentshare="e", pids=1)
    with pytest.raises(InvalidResource) as caught:
        validate_resource(data)
    assert len(caught.value.errors) == 5
    assert str(caught.value).endswith("(and 2 more errors)")


def test_long_values_truncated_in_messages() -> None:
    error = only_error(instance_dict(runtime="x" * 500))
    assert len(error.message) < 150
    assert error.value == "x" * 500

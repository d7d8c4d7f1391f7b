"""Claim resolution between manifest files, without a store."""

from __future__ import annotations

from agentic_sandbox.sources.ownership import Claim, Duplicate, resolve_claims

WEB = ("Instance", "default", "web")
API = ("Instance", "default", "api")


def test_resolve_new_object_free() -> None:
    assert resolve_claims({}, [Claim("/m/a.yaml", {WEB: 1})], {}) == {}


def test_resolve_owned_elsewhere_rejected() -> None:
    rejected = resolve_claims({WEB: "/m/a.yaml"}, [Claim("/m/b.yaml", {WEB: 3})], {})

    assert rejected == {"/m/b.yaml": [Duplicate(key=WEB, line=3, owner="/m/a.yaml")]}


def test_resolve_same_batch_first_path_wins() -> None:
    claims = [Claim("/m/b.yaml", {WEB: 1}), Claim("/m/a.yaml", {WEB: 1})]

    rejected = resolve_claims({}, claims, {})

    assert list(rejected) == ["/m/b.yaml"]
    assert rejected["/m/b.yaml"][0].owner == "/m/a.yaml"


def test_resolve_move_between_files() -> None:
    claims = [Claim("/m/a.yaml", {}), Claim("/m/b.yaml", {WEB: 1})]

    assert resolve_claims({WEB: "/m/a.yaml"}, claims, {}) == {}


def test_resolve_swap_between_files() -> None:
    owners = {WEB: "/m/a.yaml", API: "/m/b.yaml"}
    claims = [Claim("/m/a.yaml", {API: 1}), Claim("/m/b.yaml", {WEB: 1})]

    assert resolve_claims(owners, claims, {}) == {}


def test_resolve_released_by_gone_file() -> None:
    released = {"/m/a.yaml": {WEB}}

    assert resolve_claims({WEB: "/m/a.yaml"}, [Claim("/m/b.yaml", {WEB: 1})], released) == {}


def test_resolve_rejected_file_keeps_objects() -> None:
    # a.yaml drops web but is itself rejected (it takes api from c.yaml), so it keeps web,
    # and b.yaml may not take web.
    owners = {WEB: "/m/a.yaml", API: "/m/c.yaml"}
    claims = [Claim("/m/a.yaml", {API: 2}), Claim("/m/b.yaml", {WEB: 1})]

    rejected = resolve_claims(owners, claims, {})

    assert rejected["/m/a.yaml"] == [Duplicate(key=API, line=2, owner="/m/c.yaml")]
    assert rejected["/m/b.yaml"] == [Duplicate(key=WEB, line=1, owner="/m/a.yaml")]

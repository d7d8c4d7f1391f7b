"""The committed generated code matches agent.proto."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

PROTO_ROOT = Path(__file__).resolve().parents[2] / "agentic_sandbox" / "agent" / "proto"
PROTO = Path("agent/v1/agent.proto")
GENERATED = ("agent_pb2.py", "agent_pb2.pyi")


def test_generated_code_is_current(tmp_path: Path) -> None:
    protoc = pytest.importorskip("grpc_tools.protoc")
    (tmp_path / PROTO.parent).mkdir(parents=True)
    shutil.copy(PROTO_ROOT / PROTO, tmp_path / PROTO)
    arguments = ["protoc", f"-I{tmp_path}", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}"]
    assert protoc.main([*arguments, str(tmp_path / PROTO)]) == 0
    for name in GENERATED:
        fresh = (tmp_path / PROTO.parent / name).read_text()
        committed = (PROTO_ROOT / PROTO.parent / name).read_text()
        assert committed == fresh, (
            f"{name} is out of date; regenerate it from agentic_sandbox/agent/proto with: "
            "python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. agent/v1/agent.proto"
        )


def test_messages_round_trip() -> None:
    from agentic_sandbox.agent.proto.agent.v1 import agent_pb2 as pb

    request = pb.CommandRequest(command_id="c1", argv=["uname", "-a"], env={"A": "1"})
    message = pb.ServerMessage(command=request)
    decoded = pb.ServerMessage.FromString(message.SerializeToString())
    assert decoded.WhichOneof("payload") == "command"
    assert list(decoded.command.argv) == ["uname", "-a"]
    assert dict(decoded.command.env) == {"A": "1"}

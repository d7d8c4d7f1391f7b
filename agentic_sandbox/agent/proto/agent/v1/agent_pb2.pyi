from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENT_STATE_UNSPECIFIED: _ClassVar[AgentState]
    AGENT_STATE_STARTING: _ClassVar[AgentState]
    AGENT_STATE_READY: _ClassVar[AgentState]
    AGENT_STATE_BUSY: _ClassVar[AgentState]
    AGENT_STATE_ERROR: _ClassVar[AgentState]
    AGENT_STATE_SHUTTING_DOWN: _ClassVar[AgentState]

class OutputStream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_STREAM_UNSPECIFIED: _ClassVar[OutputStream]
    OUTPUT_STREAM_STDOUT: _ClassVar[OutputStream]
    OUTPUT_STREAM_STDERR: _ClassVar[OutputStream]
AGENT_STATE_UNSPECIFIED: AgentState
AGENT_STATE_STARTING: AgentState
AGENT_STATE_READY: AgentState
AGENT_STATE_BUSY: AgentState
AGENT_STATE_ERROR: AgentState
AGENT_STATE_SHUTTING_DOWN: AgentState
OUTPUT_STREAM_UNSPECIFIED: OutputStream
OUTPUT_STREAM_STDOUT: OutputStream
OUTPUT_STREAM_STDERR: OutputStream

class AgentMessage(_message.Message):
    __slots__ = ("register", "heartbeat", "output", "result", "session_report")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    SESSION_REPORT_FIELD_NUMBER: _ClassVar[int]
    register: Register
    heartbeat: Heartbeat
    output: OutputChunk
    result: CommandResult
    session_report: SessionReport
    def __init__(self, register: _Optional[_Union[Register, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., output: _Optional[_Union[OutputChunk, _Mapping]] = ..., result: _Optional[_Union[CommandResult, _Mapping]] = ..., session_report: _Optional[_Union[SessionReport, _Mapping]] = ...) -> None: ...

class ServerMessage(_message.Message):
    __slots__ = ("register_ack", "command", "stdin", "signal", "config", "shutdown", "session_query")
    REGISTER_ACK_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    SHUTDOWN_FIELD_NUMBER: _ClassVar[int]
    SESSION_QUERY_FIELD_NUMBER: _ClassVar[int]
    register_ack: RegisterAck
    command: CommandRequest
    stdin: StdinChunk
    signal: SignalRequest
    config: ConfigUpdate
    shutdown: Shutdown
    session_query: SessionQuery
    def __init__(self, register_ack: _Optional[_Union[RegisterAck, _Mapping]] = ..., command: _Optional[_Union[CommandRequest, _Mapping]] = ..., stdin: _Optional[_Union[StdinChunk, _Mapping]] = ..., signal: _Optional[_Union[SignalRequest, _Mapping]] = ..., config: _Optional[_Union[ConfigUpdate, _Mapping]] = ..., shutdown: _Optional[_Union[Shutdown, _Mapping]] = ..., session_query: _Optional[_Union[SessionQuery, _Mapping]] = ...) -> None: ...

class SystemInfo(_message.Message):
    __slots__ = ("os", "kernel", "machine", "cpu_count", "memory_bytes")
    OS_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    MACHINE_FIELD_NUMBER: _ClassVar[int]
    CPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    os: str
    kernel: str
    machine: str
    cpu_count: int
    memory_bytes: int
    def __init__(self, os: _Optional[str] = ..., kernel: _Optional[str] = ..., machine: _Optional[str] = ..., cpu_count: _Optional[int] = ..., memory_bytes: _Optional[int] = ...) -> None: ...

class Register(_message.Message):
    __slots__ = ("agent_id", "hostname", "version", "capabilities", "system", "sessions")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    hostname: str
    version: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    system: SystemInfo
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    def __init__(self, agent_id: _Optional[str] = ..., hostname: _Optional[str] = ..., version: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., system: _Optional[_Union[SystemInfo, _Mapping]] = ..., sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ...) -> None: ...

class RegisterAck(_message.Message):
    __slots__ = ("heartbeat_interval_seconds", "config", "connection_id")
    class ConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HEARTBEAT_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    heartbeat_interval_seconds: int
    config: _containers.ScalarMap[str, str]
    connection_id: str
    def __init__(self, heartbeat_interval_seconds: _Optional[int] = ..., config: _Optional[_Mapping[str, str]] = ..., connection_id: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("state", "running_commands", "load_average_1m", "memory_total_bytes", "memory_available_bytes", "uptime_seconds", "sent_at_ms")
    STATE_FIELD_NUMBER: _ClassVar[int]
    RUNNING_COMMANDS_FIELD_NUMBER: _ClassVar[int]
    LOAD_AVERAGE_1M_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_AVAILABLE_BYTES_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    state: AgentState
    running_commands: int
    load_average_1m: float
    memory_total_bytes: int
    memory_available_bytes: int
    uptime_seconds: int
    sent_at_ms: int
    def __init__(self, state: _Optional[_Union[AgentState, str]] = ..., running_commands: _Optional[int] = ..., load_average_1m: _Optional[float] = ..., memory_total_bytes: _Optional[int] = ..., memory_available_bytes: _Optional[int] = ..., uptime_seconds: _Optional[int] = ..., sent_at_ms: _Optional[int] = ...) -> None: ...

class OutputChunk(_message.Message):
    __slots__ = ("command_id", "stream", "data", "seq")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    stream: OutputStream
    data: bytes
    seq: int
    def __init__(self, command_id: _Optional[str] = ..., stream: _Optional[_Union[OutputStream, str]] = ..., data: _Optional[bytes] = ..., seq: _Optional[int] = ...) -> None: ...

class CommandResult(_message.Message):
    __slots__ = ("command_id", "exit_code", "signal", "error", "duration_ms", "timed_out", "last_seq")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    exit_code: int
    signal: int
    error: str
    duration_ms: int
    timed_out: bool
    last_seq: int
    def __init__(self, command_id: _Optional[str] = ..., exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., error: _Optional[str] = ..., duration_ms: _Optional[int] = ..., timed_out: _Optional[bool] = ..., last_seq: _Optional[int] = ...) -> None: ...

class CommandRequest(_message.Message):
    __slots__ = ("command_id", "argv", "env", "working_dir", "timeout_seconds", "pty", "pty_columns", "pty_rows", "stdin")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    ARGV_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    WORKING_DIR_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PTY_FIELD_NUMBER: _ClassVar[int]
    PTY_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    PTY_ROWS_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    argv: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.ScalarMap[str, str]
    working_dir: str
    timeout_seconds: int
    pty: bool
    pty_columns: int
    pty_rows: int
    stdin: bool
    def __init__(self, command_id: _Optional[str] = ..., argv: _Optional[_Iterable[str]] = ..., env: _Optional[_Mapping[str, str]] = ..., working_dir: _Optional[str] = ..., timeout_seconds: _Optional[int] = ..., pty: _Optional[bool] = ..., pty_columns: _Optional[int] = ..., pty_rows: _Optional[int] = ..., stdin: _Optional[bool] = ...) -> None: ...

class StdinChunk(_message.Message):
    __slots__ = ("command_id", "data", "eof")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    EOF_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    data: bytes
    eof: bool
    def __init__(self, command_id: _Optional[str] = ..., data: _Optional[bytes] = ..., eof: _Optional[bool] = ...) -> None: ...

class SignalRequest(_message.Message):
    __slots__ = ("command_id", "signal")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    signal: int
    def __init__(self, command_id: _Optional[str] = ..., signal: _Optional[int] = ...) -> None: ...

class ConfigUpdate(_message.Message):
    __slots__ = ("config", "heartbeat_interval_seconds")
    class ConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    config: _containers.ScalarMap[str, str]
    heartbeat_interval_seconds: int
    def __init__(self, config: _Optional[_Mapping[str, str]] = ..., heartbeat_interval_seconds: _Optional[int] = ...) -> None: ...

class Shutdown(_message.Message):
    __slots__ = ("reason", "grace_period_seconds")
    REASON_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    reason: str
    grace_period_seconds: int
    def __init__(self, reason: _Optional[str] = ..., grace_period_seconds: _Optional[int] = ...) -> None: ...

class SessionQuery(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Session(_message.Message):
    __slots__ = ("command_id", "argv", "started_at_ms", "pid", "pty", "last_seq", "finished")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    ARGV_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    PTY_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    argv: _containers.RepeatedScalarFieldContainer[str]
    started_at_ms: int
    pid: int
    pty: bool
    last_seq: int
    finished: bool
    def __init__(self, command_id: _Optional[str] = ..., argv: _Optional[_Iterable[str]] = ..., started_at_ms: _Optional[int] = ..., pid: _Optional[int] = ..., pty: _Optional[bool] = ..., last_seq: _Optional[int] = ..., finished: _Optional[bool] = ...) -> None: ...

class SessionReport(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    def __init__(self, sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ...) -> None: ...

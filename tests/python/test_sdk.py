"""The Python host SDK (PyPI `extism`) on libextism, through its public API only.

Run by scripts/python-tests.sh (which tests/capi.rs runs under `cargo test`). Test plugins and
their behaviour: testdata/rust/README.md.
"""

import json
import os
import threading
import time
import typing
import uuid
from pathlib import Path

import pytest

import extism
from extism.extism import CompiledPlugin  # public, but not re-exported by the package

TESTDATA = Path(__file__).resolve().parents[2] / "testdata"


def wasm(name: str) -> bytes:
    return (TESTDATA / "rust" / "wasm" / f"{name}.wasm").read_bytes()


def wasm_path(name: str) -> str:
    return str(TESTDATA / "rust" / "wasm" / f"{name}.wasm")


# Host functions. The SDK dispatches callbacks through a global registry filled by the
# decorator, so they are defined once here and passed explicitly to each plugin.


@extism.host_fn(name="host_reflect")
def reflect_upper(data: bytes) -> bytes:
    return data.upper()


@extism.host_fn(
    name="host_reflect",
    signature=([extism.ValType.PTR], [extism.ValType.PTR]),
    user_data=b"!",
)
def reflect_with_suffix(plugin, params, results, suffix):
    data = plugin.input_bytes(params[0])
    plugin.return_bytes(results[0], data + suffix)


@extism.host_fn(name="host_reflect")
def reflect_json(
    value: typing.Annotated[dict, extism.Json]
) -> typing.Annotated[dict, extism.Json]:
    return {"seen": value, "keys": sorted(value)}


@extism.host_fn(name="host_context")
def context_greeting(plugin: extism.CurrentPlugin) -> str:
    return plugin.host_context()["greeting"]


def parse_json(buffer) -> typing.Any:
    return json.loads(bytes(buffer))


def host_fns_plugin(reflect, **kwargs) -> extism.Plugin:
    return extism.Plugin(wasm("host_fns"), functions=[reflect, context_greeting], **kwargs)


def test_version():
    assert extism.extism_version() == os.environ["EXTISM_EXPECTED_VERSION"]


def test_call_keeps_vars_between_calls():
    with extism.Plugin(wasm("count_vowels"), functions=[]) as plugin:
        first = json.loads(plugin.call("count_vowels", "Hello, World!"))
        assert first == {"count": 3, "total": 3, "vowels": "aeiouAEIOU"}
        second = json.loads(plugin.call("count_vowels", b"Hello, World!"))
        assert second["total"] == 6


def test_config_argument_and_manifest_config():
    with extism.Plugin(wasm("count_vowels"), config={"vowels": "lo"}, functions=[]) as plugin:
        out = plugin.call("count_vowels_no_vars", "Hello, World!", parse=parse_json)
        assert out == {"count": 5, "total": 5, "vowels": "lo"}
    manifest = {"wasm": [{"path": wasm_path("faults")}], "config": {"greeting": "from manifest"}}
    with extism.Plugin(manifest, functions=[]) as plugin:
        assert plugin.call("config_get", "greeting") == b"from manifest"
        assert plugin.call("config_get", "absent") == b"<none>"


def test_manifest_with_inline_data():
    # the SDK encodes bytes as base64 `data`
    with extism.Plugin({"wasm": [{"data": wasm("echo")}]}, functions=[]) as plugin:
        assert plugin.call("echo", b"\x00\x01binary\xff") == b"\x00\x01binary\xff"
        assert plugin.call("echo", b"") == b""


def test_function_exists_and_id():
    with extism.Plugin(wasm("count_vowels"), functions=[]) as a, extism.Plugin(
        wasm("count_vowels"), functions=[]
    ) as b:
        assert a.function_exists("count_vowels")
        assert not a.function_exists("nope")
        assert isinstance(a.id, uuid.UUID) and a.id.version == 4
        assert a.id == a.id
        assert a.id != b.id


def test_guest_error_message_is_verbatim():
    with extism.Plugin(wasm("faults"), functions=[]) as plugin:
        with pytest.raises(extism.Error) as err:
            plugin.call("fail", b"")
        assert str(err.value) == "this call failed"
        # an error set with return code 0 is still an error
        with pytest.raises(extism.Error, match="^error with return code 0$"):
            plugin.call("ok_after_error", b"")
        # the plugin is still usable
        assert plugin.call("count_calls", b"") == b"1"


def test_trap_missing_function_and_return_code():
    with extism.Plugin(wasm("faults"), functions=[]) as plugin:
        with pytest.raises(extism.Error, match="unreachable"):
            plugin.call("trap", b"")
        with pytest.raises(extism.Error, match="^Function not found: nope$"):
            plugin.call("nope", b"")
    with extism.Plugin(str(TESTDATA / "wat" / "abi.wat"), functions=[]) as plugin:
        with pytest.raises(extism.Error, match="^Error code: 7$"):
            plugin.call("rc_7", b"")


def test_creation_errors():
    with pytest.raises(extism.Error, match="^Unable to compile Extism plugin: "):
        extism.Plugin(b"\x00asm\x01\x00\x00\x00\xff", functions=[])
    with pytest.raises(extism.Error, match="No wasm files specified in Extism manifest"):
        extism.Plugin({"wasm": []}, functions=[])
    # WASI imports without WASI
    with pytest.raises(extism.Error, match="wasi_snapshot_preview1"):
        extism.Plugin(wasm("wasi_stdout"), functions=[])
    # a missing host function
    with pytest.raises(extism.Error, match="extism:host/user"):
        extism.Plugin(wasm("host_fns"), functions=[])


def test_host_function_memory_round_trip():
    with host_fns_plugin(reflect_upper) as plugin:
        assert plugin.call("roundtrip", "hello, host") == b"HELLO, HOST"
        assert plugin.call("roundtrip", b"") == b""


def test_host_function_user_data_and_explicit_signature():
    with host_fns_plugin(reflect_with_suffix) as plugin:
        assert plugin.call("roundtrip", "abc") == b"abc!"


def test_host_function_json_codec():
    with host_fns_plugin(reflect_json) as plugin:
        out = plugin.call("roundtrip", json.dumps({"b": 1, "a": [2]}), parse=parse_json)
        assert out == {"seen": {"b": 1, "a": [2]}, "keys": ["a", "b"]}


def test_host_context():
    with host_fns_plugin(reflect_upper) as plugin:
        out = plugin.call("read_context", b"", host_context={"greeting": "hi from python"})
        assert out == b"hi from python"
        out = plugin.call("read_context", b"", host_context={"greeting": "again"})
        assert out == b"again"


def test_reentrant_call_fails_instead_of_deadlocking():
    outcome = []

    @extism.host_fn(name="host_reflect")
    def reenter(data: bytes) -> bytes:
        try:
            holder[0].call("roundtrip", b"inner")
            outcome.append("no error")
        except extism.Error as e:
            outcome.append(str(e))
        return data

    holder = []
    with host_fns_plugin(reenter) as plugin:
        holder.append(plugin)
        assert plugin.call("roundtrip", b"outer") == b"outer"
    assert outcome == ["Error code: -1"]


def test_compiled_plugin_shared_by_instances():
    compiled = CompiledPlugin(wasm("host_fns"), functions=[reflect_upper, context_greeting])
    a = extism.Plugin(compiled)
    b = extism.Plugin(compiled)
    assert a.id != b.id
    assert a.call("roundtrip", "a") == b"A"
    # instances outlive the compiled plugin and keep its host functions
    del compiled
    assert b.call("roundtrip", "b") == b"B"
    a.__del__()
    assert b.call("read_context", b"", host_context={"greeting": "still"}) == b"still"
    b.__del__()


def test_cancel_from_another_thread():
    plugin = extism.Plugin(wasm("faults"), functions=[])
    handle = plugin.cancel_handle()
    assert handle.cancel()  # idle: no effect on the next call
    assert plugin.call("count_calls", b"") == b"1"
    errors = []

    def run():
        try:
            plugin.call("loop_forever", b"")
        except extism.Error as e:
            errors.append(str(e))

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 30
    # a cancel before the call starts is forgotten, so keep cancelling until it ends
    while worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
        handle.cancel()
    worker.join(timeout=5)
    assert errors == ["timeout"]
    assert plugin.call("count_calls", b"") == b"2"


def test_timeout_from_manifest():
    manifest = {"wasm": [{"path": wasm_path("faults")}], "timeout_ms": 100}
    with extism.Plugin(manifest, functions=[]) as plugin:
        with pytest.raises(extism.Error, match="^timeout$"):
            plugin.call("loop_forever", b"")


def test_calls_from_threads_are_serialised():
    plugin = extism.Plugin(wasm("faults"), functions=[])

    def work():
        for _ in range(50):
            plugin.call("count_calls", b"")

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert plugin.call("count_calls", b"") == b"101"


def test_wasi():
    with extism.Plugin(wasm("wasi_stdout"), wasi=True, functions=[]) as plugin:
        assert plugin.call("hello", b"") == b"done"
        with pytest.raises(extism.Error):
            plugin.call("exit_code", b"3")


def test_custom_logging():
    lines = []
    logger = extism.set_log_custom(lines.append, "info")
    with extism.Plugin(wasm("logging"), functions=[]) as plugin:
        assert plugin.call("log_all", b"") == b"ok"
        plugin_id = str(plugin.id)
    logger.drain()
    text = "".join(lines)
    assert all(line.endswith("\n") for line in lines)
    for level in ("info", "warn", "error"):
        assert f"extism::pdk: {level} message" in text
    for level in ("trace", "debug"):
        assert f"{level} message" not in text
    assert f'plugin="{plugin_id}"' in text

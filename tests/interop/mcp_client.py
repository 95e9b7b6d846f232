"""Drives `errand mcp` with the official MCP Python SDK (mcp==2.3.0).

The Rust tests in tests/mcp.rs run it with the interop virtual environment's
interpreter and one argument, a JSON scenario:

    {
      "command": "/path/to/errand", "args": ["mcp", ...], "env": {...}, "cwd": "...",
      "mode": "legacy" | "auto",      # the SDK's connect modes: `initialize`, or
                                      # `server/discover` (falling back to `initialize`)
      "steps": [
        {"op": "list"},
        {"op": "call", "tool": "text-stats", "arguments": {...}},
        {"op": "call_raw", "tool": "...", "arguments": {...}},   # a protocol error is expected
        {"op": "call_cancel", "tool": "...", "arguments": {...}, "after": 2},
                                      # give up after `after` seconds: the SDK then sends
                                      # `notifications/cancelled`
        {"op": "listen"},             # 2026-07-28: open `subscriptions/listen` for tool list changes
        {"op": "publish", "src": "...", "dst": "..."},   # copy a package into a node's folder
        {"op": "wait_list_changed", "timeout": 30},
        {"op": "wait_listed", "tool": "...", "timeout": 30}
      ]
    }

It prints one JSON object per step on stdout, as the SDK parsed what the
server sent, and exits non-zero (with the traceback on stderr) on anything
unexpected. The server's stderr (its logs) passes through to this stderr.
"""

import json
import os
import shutil
import sys
from contextlib import AsyncExitStack

import anyio
import mcp_types as types
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.subscriptions import ToolsListChanged


def emit(obj):
    print(json.dumps(obj), flush=True)


def dump(model):
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


async def run(spec):
    state = {"changed": anyio.Event(), "notifications": 0, "transport_errors": []}

    async def on_message(message):
        # Transport faults (a line on stdout that is not JSON-RPC, say) and
        # server notifications both arrive here.
        if isinstance(message, Exception):
            state["transport_errors"].append(repr(message))
        elif isinstance(message, types.ToolListChangedNotification):
            state["notifications"] += 1
            state["changed"].set()

    params = StdioServerParameters(
        command=spec["command"],
        args=spec["args"],
        env=spec.get("env"),
        cwd=spec.get("cwd"),
    )
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            Client(params, mode=spec["mode"], message_handler=on_message, read_timeout_seconds=120)
        )
        session = client.session
        emit(
            {
                "op": "connected",
                "protocol": client.protocol_version,
                "discovered": session._discover_result is not None,
                "initialized": session._initialize_result is not None,
                "server": dump(client.server_info) if client.server_info else None,
                "capabilities": dump(client.server_capabilities),
            }
        )
        tg = await stack.enter_async_context(anyio.create_task_group())
        for step in spec["steps"]:
            op = step["op"]
            if op == "list":
                tools = await client.list_tools(cache_mode="bypass")
                emit({"op": "list", "tools": [dump(t) for t in tools.tools]})
            elif op == "call":
                result = await client.call_tool(step["tool"], step.get("arguments"))
                emit({"op": "call", "tool": step["tool"], "result": dump(result)})
            elif op == "call_raw":
                try:
                    result = await client.call_tool(step["tool"], step.get("arguments"))
                    emit({"op": "call_raw", "tool": step["tool"], "result": dump(result)})
                except MCPError as e:
                    emit({"op": "call_raw", "tool": step["tool"], "error": {"code": e.code, "message": str(e)}})
            elif op == "call_cancel":
                result = None
                with anyio.move_on_after(step["after"]) as scope:
                    result = await client.call_tool(step["tool"], step.get("arguments"))
                emit(
                    {
                        "op": "call_cancel",
                        "tool": step["tool"],
                        "cancelled": scope.cancelled_caught,
                        "result": dump(result) if result is not None else None,
                    }
                )
            elif op == "listen":
                sub = await stack.enter_async_context(client.listen(tools_list_changed=True))

                async def consume(sub=sub):
                    async for event in sub:
                        if isinstance(event, ToolsListChanged):
                            state["notifications"] += 1
                            state["changed"].set()

                tg.start_soon(consume)
                emit({"op": "listen", "honored": dump(sub.honored)})
            elif op == "publish":
                tmp = step["dst"] + ".part"
                shutil.copyfile(step["src"], tmp)
                os.replace(tmp, step["dst"])
                emit({"op": "publish", "dst": step["dst"]})
            elif op == "wait_list_changed":
                with anyio.fail_after(step.get("timeout", 30)):
                    await state["changed"].wait()
                state["changed"] = anyio.Event()
                emit({"op": "wait_list_changed", "notifications": state["notifications"]})
            elif op == "wait_listed":
                # The tool list as a client refetches it after a change.
                with anyio.fail_after(step.get("timeout", 30)):
                    while True:
                        tools = await client.list_tools(cache_mode="bypass")
                        names = [t.name for t in tools.tools]
                        if step["tool"] in names:
                            break
                        await anyio.sleep(0.2)
                emit({"op": "wait_listed", "tools": names})
            else:
                raise ValueError(f"unknown step {op!r}")
        emit({"op": "done", "transport_errors": state["transport_errors"], "notifications": state["notifications"]})
        tg.cancel_scope.cancel()


def main():
    spec = json.loads(sys.argv[1])
    anyio.run(run, spec)


if __name__ == "__main__":
    main()

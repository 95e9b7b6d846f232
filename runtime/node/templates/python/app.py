"""`{{name}}`: upper-cases UTF-8 text and appends a suffix.

Parameters: `suffix` (default `!`).

Errand calls `Tool.invoke` once per request, in a fresh sandbox. Import
every module you need here, at the top: componentize-py runs these imports
when it builds the component, and the sandbox has no files to import from
later. `print` goes to a captured, bounded stdout; `time.time()` reads the
invocation time; `random` and `os.urandom` are seeded from the request, so
a replay sees the same numbers.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, types


def shout(text: str, suffix: str) -> str:
    """The tool's work, as a plain function you can test with plain Python."""
    return text.upper() + suffix


def param(ctx: types.RequestContext, key: str, default: str) -> str:
    """The value of request parameter `key`, or `default`."""
    return next((p.value for p in ctx.params if p.key == key), default)


class Tool(exports.Tool):
    def invoke(self, input: bytes, ctx: types.RequestContext) -> bytes:
        try:
            return self.run(input, ctx)
        except Err:
            raise
        except Exception as e:  # A bug: say what it was, rather than trap.
            raise Err(types.ToolError_Failed(f"{type(e).__name__}: {e}"))

    def run(self, input: bytes, ctx: types.RequestContext) -> bytes:
        try:
            text = input.decode("utf-8")
        except UnicodeDecodeError as e:
            raise Err(types.ToolError_InvalidInput(f"input is not UTF-8 text: {e}"))
        suffix = param(ctx, "suffix", "!")
        if len(suffix.encode()) > 16:
            raise Err(types.ToolError_InvalidInput("parameter suffix must be at most 16 bytes"))
        host.log(host.Level.INFO, "shouting", [("bytes", str(len(input)))])
        return shout(text, suffix).encode()

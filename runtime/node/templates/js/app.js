// `{{name}}`: upper-cases UTF-8 text and appends a suffix.
//
// Parameters: `suffix` (default `!`).
//
// Errand calls `tool.invoke` once per request, in a fresh sandbox. The
// component is built without WASI (`jco componentize -d stdio random clocks
// http fetch-event`): `console.log` goes nowhere (log with `log`),
// `Date.now()` traps (use `ctx.timeMs`, the invocation time) and
// `Math.random()` is seeded when the component is built (the same numbers
// on every request).

import { log } from 'errand:capability/host@0.1.0';

const decoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

/** The tool's work, as a plain function you can test with Node.js. */
export function shout(text, suffix) {
  return text.toUpperCase() + suffix;
}

/** A tool error the requester sees: `invalid-input` or `failed`. */
function toolError(tag, message) {
  return { tag, val: message };
}

/** The value of request parameter `key`, or `fallback`. */
function param(ctx, key, fallback) {
  return ctx.params.find((p) => p.key === key)?.value ?? fallback;
}

function run(input, ctx) {
  let text;
  try {
    text = decoder.decode(input);
  } catch {
    throw toolError('invalid-input', 'input is not UTF-8 text');
  }
  const suffix = param(ctx, 'suffix', '!');
  if (encoder.encode(suffix).length > 16) {
    throw toolError('invalid-input', 'parameter suffix must be at most 16 bytes');
  }
  log('info', 'shouting', [['bytes', String(input.length)]]);
  return encoder.encode(shout(text, suffix));
}

export const tool = {
  invoke(input, ctx) {
    try {
      return run(input, ctx);
    } catch (e) {
      // A tool error as is; anything else is a bug: say what it was,
      // rather than trap.
      if (e && (e.tag === 'invalid-input' || e.tag === 'failed')) throw e;
      throw toolError('failed', String(e && e.stack ? `${e}\n${e.stack}` : e));
    }
  },
};

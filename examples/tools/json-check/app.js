// `json-check`: validates a JSON document against a JSON Schema, and says
// where and why it does not conform.
//
// An Errand example tool in JavaScript, built with jco and componentize-js
// (`errand build examples/tools/json-check`). Agents use it to check a
// model's or a tool's JSON output against the schema it should follow
// before acting on it.
//
// Input: `{"schema": SCHEMA, "data": DOCUMENT}`. Output:
// `{"valid": BOOL, "errors": [{"path", "keyword", "message"}], "checked": N}`
// where `path` is a JSON Pointer into the document and `checked` counts the
// values visited. Parameter `max_errors` (1 to 1000, default 50) stops the
// check after that many errors.
//
// The keywords of JSON Schema 2020-12 that describe data are supported:
// type, enum, const; properties, required, additionalProperties,
// patternProperties, propertyNames, minProperties, maxProperties;
// items, prefixItems, contains, minItems, maxItems, uniqueItems;
// minLength, maxLength, pattern; minimum, maximum, exclusiveMinimum,
// exclusiveMaximum, multipleOf; allOf, anyOf, oneOf, not, if/then/else;
// $ref to "#" and to local "#/$defs/…" or "#/definitions/…" pointers.
// Annotations (title, description, format, default…) are ignored, as the
// specification allows. Lengths count Unicode code points.

import { log } from 'errand:capability/host@0.1.0';

const decoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();
const MAX_DEPTH = 128;

function toolError(tag, message) {
  return { tag, val: message };
}

function param(ctx, key) {
  return ctx.params.find((p) => p.key === key)?.value;
}

/** The JSON Schema type names `value` has (an integer is also a number). */
function typesOf(value) {
  if (value === null) return ['null'];
  if (Array.isArray(value)) return ['array'];
  switch (typeof value) {
    case 'boolean':
      return ['boolean'];
    case 'string':
      return ['string'];
    case 'number':
      return Number.isInteger(value) ? ['integer', 'number'] : ['number'];
    default:
      return ['object'];
  }
}

/** JSON equality: same type and same content, key order aside. */
function equal(a, b) {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    return a.length === b.length && a.every((x, i) => equal(x, b[i]));
  }
  if (typeof a !== 'object') return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && equal(a[k], b[k]));
}

function pointer(path) {
  return path.map((p) => '/' + String(p).replaceAll('~', '~0').replaceAll('/', '~1')).join('');
}

function describe(value) {
  const s = JSON.stringify(value);
  return s.length > 60 ? s.slice(0, 57) + '...' : s;
}

class Checker {
  constructor(root, maxErrors) {
    this.root = root;
    this.maxErrors = maxErrors;
    this.errors = [];
    this.checked = 0;
    this.regexps = new Map();
  }

  full() {
    return this.errors.length >= this.maxErrors;
  }

  fail(path, keyword, message) {
    if (!this.full()) this.errors.push({ path: pointer(path), keyword, message });
  }

  regexp(source) {
    let re = this.regexps.get(source);
    if (!re) {
      try {
        re = new RegExp(source, 'u');
      } catch (e) {
        throw toolError('invalid-input', `schema pattern ${describe(source)} is not a valid regular expression: ${e.message}`);
      }
      this.regexps.set(source, re);
    }
    return re;
  }

  resolve(ref) {
    if (ref === '#') return this.root;
    if (!ref.startsWith('#/')) {
      throw toolError('invalid-input', `$ref ${describe(ref)}: only local references ("#/...") are supported`);
    }
    let node = this.root;
    for (const raw of ref.slice(2).split('/')) {
      const key = decodeURIComponent(raw).replaceAll('~1', '/').replaceAll('~0', '~');
      if (node === null || typeof node !== 'object' || !Object.hasOwn(node, key)) {
        throw toolError('invalid-input', `$ref ${describe(ref)} points at nothing in the schema`);
      }
      node = node[key];
    }
    return node;
  }

  /** True when `value` conforms, without recording errors. */
  conforms(value, schema, depth) {
    const sub = new Checker(this.root, 1);
    sub.regexps = this.regexps;
    sub.check(value, schema, [], depth);
    this.checked += sub.checked;
    return sub.errors.length === 0;
  }

  check(value, schema, path, depth) {
    if (this.full()) return;
    if (depth > MAX_DEPTH) {
      throw toolError('invalid-input', `nested more than ${MAX_DEPTH} levels deep (or a $ref loop) at ${pointer(path) || '/'}`);
    }
    this.checked += 1;
    if (schema === true) return;
    if (schema === false) {
      this.fail(path, 'false', 'no value is allowed here');
      return;
    }
    if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) {
      throw toolError('invalid-input', `a schema must be an object or a boolean, found ${describe(schema)} (for ${pointer(path) || '/'})`);
    }
    const s = schema;
    if (s.$ref !== undefined) this.check(value, this.resolve(s.$ref), path, depth + 1);
    const types = typesOf(value);

    if (s.type !== undefined) {
      const wanted = Array.isArray(s.type) ? s.type : [s.type];
      if (!wanted.some((t) => types.includes(t))) {
        this.fail(path, 'type', `expected ${wanted.join(' or ')}, found ${types[0]}`);
      }
    }
    if (s.enum !== undefined && !s.enum.some((e) => equal(e, value))) {
      this.fail(path, 'enum', `${describe(value)} is not one of ${describe(s.enum)}`);
    }
    if (s.const !== undefined && !equal(s.const, value)) {
      this.fail(path, 'const', `expected ${describe(s.const)}, found ${describe(value)}`);
    }

    if (types.includes('number')) this.checkNumber(value, s, path);
    if (typeof value === 'string') this.checkString(value, s, path);
    if (Array.isArray(value)) this.checkArray(value, s, path, depth);
    if (types[0] === 'object') this.checkObject(value, s, path, depth);

    for (const sub of s.allOf ?? []) this.check(value, sub, path, depth + 1);
    if (s.anyOf !== undefined && !s.anyOf.some((sub) => this.conforms(value, sub, depth + 1))) {
      this.fail(path, 'anyOf', `matches none of the ${s.anyOf.length} schemas of anyOf`);
    }
    if (s.oneOf !== undefined) {
      const n = s.oneOf.filter((sub) => this.conforms(value, sub, depth + 1)).length;
      if (n !== 1) this.fail(path, 'oneOf', `matches ${n} of the schemas of oneOf, not exactly one`);
    }
    if (s.not !== undefined && this.conforms(value, s.not, depth + 1)) {
      this.fail(path, 'not', 'matches the schema of not');
    }
    if (s.if !== undefined) {
      const branch = this.conforms(value, s.if, depth + 1) ? s.then : s.else;
      if (branch !== undefined) this.check(value, branch, path, depth + 1);
    }
  }

  checkNumber(n, s, path) {
    if (s.minimum !== undefined && n < s.minimum) this.fail(path, 'minimum', `${n} is less than ${s.minimum}`);
    if (s.maximum !== undefined && n > s.maximum) this.fail(path, 'maximum', `${n} is more than ${s.maximum}`);
    if (s.exclusiveMinimum !== undefined && n <= s.exclusiveMinimum) {
      this.fail(path, 'exclusiveMinimum', `${n} is not more than ${s.exclusiveMinimum}`);
    }
    if (s.exclusiveMaximum !== undefined && n >= s.exclusiveMaximum) {
      this.fail(path, 'exclusiveMaximum', `${n} is not less than ${s.exclusiveMaximum}`);
    }
    if (s.multipleOf !== undefined) {
      const q = n / s.multipleOf;
      if (!Number.isFinite(q) || Math.abs(q - Math.round(q)) > 1e-9) {
        this.fail(path, 'multipleOf', `${n} is not a multiple of ${s.multipleOf}`);
      }
    }
  }

  checkString(str, s, path) {
    const len = [...str].length;
    if (s.minLength !== undefined && len < s.minLength) {
      this.fail(path, 'minLength', `${len} characters, fewer than ${s.minLength}`);
    }
    if (s.maxLength !== undefined && len > s.maxLength) {
      this.fail(path, 'maxLength', `${len} characters, more than ${s.maxLength}`);
    }
    if (s.pattern !== undefined && !this.regexp(s.pattern).test(str)) {
      this.fail(path, 'pattern', `${describe(str)} does not match ${describe(s.pattern)}`);
    }
  }

  checkArray(arr, s, path, depth) {
    if (s.minItems !== undefined && arr.length < s.minItems) {
      this.fail(path, 'minItems', `${arr.length} items, fewer than ${s.minItems}`);
    }
    if (s.maxItems !== undefined && arr.length > s.maxItems) {
      this.fail(path, 'maxItems', `${arr.length} items, more than ${s.maxItems}`);
    }
    if (s.uniqueItems === true) {
      for (let i = 1; i < arr.length; i++) {
        const j = arr.slice(0, i).findIndex((x) => equal(x, arr[i]));
        if (j >= 0) {
          this.fail(path, 'uniqueItems', `items ${j} and ${i} are equal`);
          break;
        }
      }
    }
    const prefix = s.prefixItems ?? [];
    arr.forEach((item, i) => {
      const sub = i < prefix.length ? prefix[i] : s.items;
      if (sub !== undefined) this.check(item, sub, [...path, i], depth + 1);
    });
    if (s.contains !== undefined) {
      const n = arr.filter((item) => this.conforms(item, s.contains, depth + 1)).length;
      const min = s.minContains ?? 1;
      if (n < min) this.fail(path, 'contains', `${n} items match contains, fewer than ${min}`);
      if (s.maxContains !== undefined && n > s.maxContains) {
        this.fail(path, 'maxContains', `${n} items match contains, more than ${s.maxContains}`);
      }
    }
  }

  checkObject(obj, s, path, depth) {
    const keys = Object.keys(obj);
    if (s.minProperties !== undefined && keys.length < s.minProperties) {
      this.fail(path, 'minProperties', `${keys.length} properties, fewer than ${s.minProperties}`);
    }
    if (s.maxProperties !== undefined && keys.length > s.maxProperties) {
      this.fail(path, 'maxProperties', `${keys.length} properties, more than ${s.maxProperties}`);
    }
    for (const k of s.required ?? []) {
      if (!Object.hasOwn(obj, k)) this.fail(path, 'required', `missing required property ${describe(k)}`);
    }
    const props = s.properties ?? {};
    const patterns = Object.entries(s.patternProperties ?? {}).map(([p, sub]) => [this.regexp(p), sub]);
    for (const k of keys) {
      let known = false;
      if (Object.hasOwn(props, k)) {
        known = true;
        this.check(obj[k], props[k], [...path, k], depth + 1);
      }
      for (const [re, sub] of patterns) {
        if (re.test(k)) {
          known = true;
          this.check(obj[k], sub, [...path, k], depth + 1);
        }
      }
      if (!known && s.additionalProperties !== undefined) {
        if (s.additionalProperties === false) {
          this.fail([...path, k], 'additionalProperties', `property ${describe(k)} is not allowed`);
        } else {
          this.check(obj[k], s.additionalProperties, [...path, k], depth + 1);
        }
      }
      if (s.propertyNames !== undefined && !this.conforms(k, s.propertyNames, depth + 1)) {
        this.fail([...path, k], 'propertyNames', `property name ${describe(k)} does not match propertyNames`);
      }
    }
  }
}

function run(input, ctx) {
  let text;
  try {
    text = decoder.decode(input);
  } catch {
    throw toolError('invalid-input', 'input is not UTF-8 text');
  }
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw toolError('invalid-input', `input is not JSON: ${e.message}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc) || !('schema' in doc) || !('data' in doc)) {
    throw toolError('invalid-input', 'input must be a JSON object {"schema": ..., "data": ...}');
  }
  const raw = param(ctx, 'max_errors') ?? '50';
  const maxErrors = /^\d{1,4}$/.test(raw) ? Number(raw) : NaN;
  if (!(maxErrors >= 1 && maxErrors <= 1000)) {
    throw toolError('invalid-input', `parameter max_errors=${describe(raw)} must be 1 to 1000`);
  }
  const checker = new Checker(doc.schema, maxErrors);
  checker.check(doc.data, doc.schema, [], 0);
  const valid = checker.errors.length === 0;
  log('info', 'checked', [
    ['valid', String(valid)],
    ['errors', String(checker.errors.length)],
    ['values', String(checker.checked)],
  ]);
  return encoder.encode(JSON.stringify({ valid, errors: checker.errors, checked: checker.checked }));
}

export const tool = {
  invoke(input, ctx) {
    try {
      return run(input, ctx);
    } catch (e) {
      // A tool error as is; anything else is a bug (or the engine's own
      // limit, such as a too deeply nested document): say what it was,
      // rather than trap.
      if (e && (e.tag === 'invalid-input' || e.tag === 'failed')) throw e;
      throw toolError('failed', String(e));
    }
  },
};

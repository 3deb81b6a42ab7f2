import { COMPILED, type InjectionRule } from './injection.rules.ts';

export type { InjectionRule } from './injection.rules.ts';

/** The parts of an HTTP request the detector reads; `body` is parsed JSON or undefined. */
export interface RequestParts {
  method: string;
  path: string;
  query: Readonly<Record<string, string | string[] | undefined>>;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  body: unknown;
}

/**
 * What was found and where: `query.q`, `body.items[2].name`, `path`, `header.user-agent`. The
 * location never contains the offending value; it is echoed to the client and written to the
 * audit trail, so attacker-chosen member names appear only when they are plain identifiers
 * (`body.note.text`), otherwise as `[?]`. A hostile member *name* is reported as `{key}` after its
 * parent (`body.filter{key}`, `query{key}`).
 */
export interface Detection {
  rule: InjectionRule;
  location: string;
}

/**
 * Headers worth reading: the ones an attacker sets freely and that end up in logs, links or
 * reports. Authorization and cookie values are opaque credentials (base64, JWTs) and are skipped;
 * cookie *names* are read. Node lowercases header names, so lookups are lowercase.
 */
const HEADERS = [
  'user-agent',
  'referer',
  'origin',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-real-ip',
  'x-request-id',
  'content-type',
  'accept-language',
] as const;

/**
 * Caps on the JSON walk. The server's body limit (1 MiB) and the route schemas reject anything
 * near these long before the detector runs; the caps only keep a hostile body from costing
 * unbounded stack or time. Beyond them the walk stops (fails open): refusing would need a
 * fifth rule, and depth 32 / 20 000 strings is far outside any clinic payload.
 */
export const BODY_LIMITS = { maxDepth: 32, maxNodes: 20_000 } as const;

/** How often a value is percent-decoded (catches `%252e%252e%252f`, triple encoding). */
const MAX_DECODES = 3;

/**
 * Looks for SQL, script, command and path-traversal injection in the path, query values, selected
 * headers and every string (and member name) of a JSON body; returns the first hit, or undefined.
 * Pure and synchronous. Each value is checked as sent, after up to three rounds of lenient
 * percent-decoding, and after NFKC normalisation (fullwidth `．．／`).
 *
 * @example
 * detectInjection({ method: 'GET', path: '/api/v1/patients', query: { q: "x' OR '1'='1" }, headers: {}, body: undefined });
 * // → { rule: 'sql-injection', location: 'query.q' }
 */
export function detectInjection(req: RequestParts): Detection | undefined {
  return (
    scanValue('path', req.path, true) ??
    scanQuery(req.query) ??
    scanHeaders(req.headers) ??
    walk(req.body, 'body')
  );
}

function scanQuery(query: RequestParts['query']): Detection | undefined {
  for (const [name, value] of Object.entries(query)) {
    // `walk`, not a string check: a custom query parser may hand over arrays or nested objects.
    const hit = scanKey('query', name) ?? walk(value, member('query', name));
    if (hit) {
      return hit;
    }
  }
  return undefined;
}

function scanHeaders(headers: RequestParts['headers']): Detection | undefined {
  for (const name of HEADERS) {
    const hit = walk(headers[name], `header.${name}`);
    if (hit) {
      return hit;
    }
  }
  const cookie = headers.cookie;
  for (const line of typeof cookie === 'string' ? [cookie] : (cookie ?? [])) {
    for (const pair of line.split(';')) {
      const eq = pair.indexOf('=');
      const hit = scanValue('header.cookie', (eq < 0 ? pair : pair.slice(0, eq)).trim(), false);
      if (hit) {
        return hit;
      }
    }
  }
  return undefined;
}

/**
 * Checks every string and member name under `root`, depth-first in document order so that the
 * first hit is stable. Iterative (an explicit stack, no recursion to exhaust), and never holds
 * more than BODY_LIMITS.maxNodes pending values however long an array is.
 */
function walk(root: unknown, rootLocation: string): Detection | undefined {
  const stack: { value: unknown; location: string; depth: number }[] = [
    { value: root, location: rootLocation, depth: 0 },
  ];
  let nodes = 0;
  while (stack.length > 0 && nodes < BODY_LIMITS.maxNodes) {
    const { value, location, depth } = stack.pop() as (typeof stack)[number];
    nodes++;
    if (typeof value === 'string') {
      const hit = scanValue(location, value, false);
      if (hit) {
        return hit;
      }
    } else if (typeof value === 'object' && value !== null && depth < BODY_LIMITS.maxDepth) {
      const room = Math.max(0, BODY_LIMITS.maxNodes - nodes - stack.length);
      // Pushed in reverse so that members are visited in document order.
      if (Array.isArray(value)) {
        for (let i = Math.min(value.length, room) - 1; i >= 0; i--) {
          stack.push({ value: value[i], location: `${location}[${i}]`, depth: depth + 1 });
        }
      } else {
        const entries = Object.entries(value);
        for (let i = Math.min(entries.length, room) - 1; i >= 0; i--) {
          const [key, child] = entries[i] as [string, unknown];
          stack.push({ value: child, location: member(location, key), depth: depth + 1 });
        }
        for (const [key] of entries) {
          const hit = scanKey(location, key);
          if (hit) {
            return hit;
          }
        }
      }
    }
  }
  return undefined;
}

function scanKey(parent: string, key: string): Detection | undefined {
  return scanValue(`${parent}{key}`, key, false);
}

const PLAIN_NAME = /^[A-Za-z_$][\w$-]{0,63}$/;

/** `parent.name` for identifier-like names; `parent[?]` for anything an attacker could smuggle text in. */
function member(parent: string, name: string): string {
  return PLAIN_NAME.test(name) ? `${parent}.${name}` : `${parent}[?]`;
}

function scanValue(location: string, raw: string, isPath: boolean): Detection | undefined {
  const forms = readings(raw);
  // Rules outer, readings inner: a value is classified by the first rule that any reading of it
  // matches, so `%0acat%20/etc/passwd` is command injection (its decoded form) rather than path
  // traversal (the `/etc/passwd` visible in the raw form).
  for (const c of COMPILED) {
    if (c.pathOnly && !isPath) {
      continue;
    }
    for (const form of forms) {
      if (c.pattern.test(form)) {
        return { rule: c.rule, location };
      }
    }
  }
  return undefined;
}

/**
 * The forms a backend might see: the value as sent, after each of up to three rounds of
 * percent-decoding, and its NFKC folding when it holds fullwidth or small forms (`．．／`,
 * `＜script＞`, `﹤`) or dot leaders (`‥`). Almost every value has one form: no `%`, no such
 * characters.
 */
function readings(raw: string): string[] {
  const forms = [raw];
  let value = raw;
  for (let round = 0; round < MAX_DECODES; round++) {
    const next = percentDecode(value);
    if (next === value) {
      break;
    }
    forms.push(next);
    value = next;
  }
  if (COMPATIBILITY_FORMS.test(value)) {
    const folded = value.normalize('NFKC');
    if (folded !== value) {
      forms.push(folded);
    }
  }
  return forms;
}

const COMPATIBILITY_FORMS = /[\u2024\u2025\uFE50-\uFE6F\uFF00-\uFFEF]/;

const ESCAPES = /(?:%[0-9a-fA-F]{2}|%u[0-9a-fA-F]{4})+/g;

/**
 * One round of percent-decoding that never throws: well-formed runs go through
 * `decodeURIComponent`; malformed ones (a lone `%ff`, overlong UTF-8 such as `%c0%ae` for `.`,
 * IIS `%u002e`) are decoded byte by byte, accepting overlong forms as the old decoders that made
 * them dangerous did (RFC 3629 §10 describes the attack). "<5% body fat" has no escape and is
 * returned as is.
 */
export function percentDecode(s: string): string {
  if (!s.includes('%')) {
    return s;
  }
  return s.replace(ESCAPES, (run) => {
    if (!run.includes('%u')) {
      try {
        return decodeURIComponent(run);
      } catch {
        // Malformed or overlong UTF-8: fall through to the lenient decoder below.
      }
    }
    return lenientDecode(run);
  });
}

function lenientDecode(run: string): string {
  const tokens = run.match(/%u[0-9a-fA-F]{4}|%[0-9a-fA-F]{2}/g) ?? [];
  let out = '';
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as string;
    if (t.length === 6) {
      out += String.fromCharCode(Number.parseInt(t.slice(2), 16));
      continue;
    }
    const b = Number.parseInt(t.slice(1), 16);
    const cont = (k: number): number | undefined => {
      const n = tokens[i + k];
      const v = n !== undefined && n.length === 3 ? Number.parseInt(n.slice(1), 16) : -1;
      return v >= 0x80 && v <= 0xbf ? v & 0x3f : undefined;
    };
    const c1 = cont(1);
    const c2 = cont(2);
    if (b < 0x80) {
      out += String.fromCharCode(b);
    } else if (b >= 0xc0 && b <= 0xdf && c1 !== undefined) {
      out += String.fromCharCode(((b & 0x1f) << 6) | c1);
      i += 1;
    } else if (b >= 0xe0 && b <= 0xef && c1 !== undefined && c2 !== undefined) {
      out += String.fromCharCode(((b & 0x0f) << 12) | (c1 << 6) | c2);
      i += 2;
    } else {
      out += t;
    }
  }
  return out;
}

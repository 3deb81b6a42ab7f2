import { CustosError, isCustosError } from '../errors.ts';

/**
 * Path-aware readers over untrusted JSON. Every failure is a CUSTOS_ERR_IMPORT whose message is
 * one line `<path>: <problem>`; the value itself never appears (DESIGN.md invariant 5).
 */

export function importError(field: string, problem: string, cause?: unknown): CustosError {
  return new CustosError('CUSTOS_ERR_IMPORT', field === '' ? problem : `${field}: ${problem}`, {
    field: field === '' ? undefined : field,
    cause,
  });
}

export function fail(field: string, problem: string): never {
  throw importError(field, problem);
}

type Json = { readonly [key: string]: unknown };

export const isJsonObject = (v: unknown): v is Json =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A JSON object together with its path from the bundle root (`entry[3].resource`). */
export class Obj {
  readonly value: Json;
  readonly path: string;

  constructor(value: unknown, path: string) {
    if (!isJsonObject(value)) {
      fail(path, 'must be a JSON object');
    }
    this.value = value;
    this.path = path;
  }

  at(key: string): string {
    return this.path === '' ? key : `${this.path}.${key}`;
  }

  has(key: string): boolean {
    return this.value[key] !== undefined;
  }

  str(key: string): string | undefined {
    const v = this.value[key];
    if (v === undefined) {
      return undefined;
    }
    if (typeof v !== 'string') {
      fail(this.at(key), 'must be a string');
    }
    return v;
  }

  reqStr(key: string): string {
    return this.str(key) ?? fail(this.at(key), 'is required');
  }

  num(key: string): number | undefined {
    const v = this.value[key];
    if (v === undefined) {
      return undefined;
    }
    if (typeof v !== 'number') {
      fail(this.at(key), 'must be a number');
    }
    return v;
  }

  obj(key: string): Obj | undefined {
    const v = this.value[key];
    return v === undefined ? undefined : new Obj(v, this.at(key));
  }

  reqObj(key: string): Obj {
    return this.obj(key) ?? fail(this.at(key), 'is required');
  }

  /** An array of objects; absent gives `[]`. */
  list(key: string): Obj[] {
    return this.#array(key).map((v, i) => new Obj(v, `${this.at(key)}[${i}]`));
  }

  /** An array of strings; absent gives `[]`. */
  strings(key: string): string[] {
    return this.#array(key).map((v, i) =>
      typeof v === 'string' ? v : fail(`${this.at(key)}[${i}]`, 'must be a string'),
    );
  }

  #array(key: string): readonly unknown[] {
    const v = this.value[key];
    if (v === undefined) {
      return [];
    }
    if (!Array.isArray(v)) {
      fail(this.at(key), 'must be an array');
    }
    return v;
  }
}

/**
 * Runs a model parser (`parseBody`, `parseIdentity`, called with an empty prefix) on `input` and
 * turns its CUSTOS_ERR_VALIDATION into CUSTOS_ERR_IMPORT at the FHIR element the model field
 * came from: `fields` maps a model top-level key to that element (`effective` ->
 * `effectiveDateTime`); the rest of the model path is kept (`code.system`). A field absent from
 * the input is reported as `is required`, whatever the schema's message for it.
 */
export function validated<T>(
  parse: (input: unknown) => T,
  input: unknown,
  at: string,
  fields: Readonly<Record<string, string>>,
): T {
  try {
    return parse(input);
  } catch (e) {
    if (!isCustosError(e, 'CUSTOS_ERR_VALIDATION') || e.field === undefined) {
      throw e;
    }
    const segments = e.field.match(/[^.[\]]+/g) ?? [];
    const absent =
      segments.reduce<unknown>(
        (v, s) => (isJsonObject(v) || Array.isArray(v) ? (v as Json)[s] : undefined),
        input,
      ) === undefined;
    const problem = absent ? 'is required' : e.message.slice(e.field.length + 2);
    const m = /^([^.[]*)(.*)$/.exec(e.field);
    const top = m?.[1] ?? '';
    const rest = m?.[2] ?? '';
    const element = fields[top] ?? top;
    throw importError(element === '' ? at : `${at}.${element}${rest}`, problem, e);
  }
}

/** Drops keys whose value is `undefined`, recursively, so parsed bodies hold no such keys. */
export function defined<T>(value: T): T {
  if (Array.isArray(value)) {
    return value.map(defined) as T;
  }
  if (isJsonObject(value)) {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, defined(v)]),
    ) as T;
  }
  return value;
}

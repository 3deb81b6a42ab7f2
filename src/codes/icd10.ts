import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { validationError } from '../errors.ts';

/**
 * The ICD-10-CM code list for diagnosis entry: a starter list bundled with Custos
 * (`icd10cm-starter.tsv`), or the complete CMS/NCHS release a practice imports with
 * `custos codes import`. A code list holds no patient data; searching it is not audited.
 */

export const ICD10_CM = 'http://hl7.org/fhir/sid/icd-10-cm';
export const STARTER_FILE = fileURLToPath(new URL('./icd10cm-starter.tsv', import.meta.url));
/** Where an imported list lives, relative to the data folder. */
export const importedFile = (dataDir: string): string => path.join(dataDir, 'codes', 'icd10cm.tsv');

export interface Code {
  /** With the dot, as clinicians write it: `F32.1`. */
  readonly code: string;
  readonly display: string;
}

interface Entry extends Code {
  /** Without the dot, upper case: `F321`. */
  readonly bare: string;
  readonly words: readonly string[];
}

/** One code per line: the code (dot optional) then white space then the title; `#` starts a comment. */
const LINE = /^([A-Za-z][0-9][0-9A-Za-z]{0,1})\.?([0-9A-Za-z]{0,4})\s+(\S.*)$/;

const words = (s: string): string[] =>
  s
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter(Boolean);

export const withDot = (bare: string): string =>
  bare.length > 3 ? `${bare.slice(0, 3)}.${bare.slice(3)}` : bare;

/**
 * Parses a code list (the CMS `icd10cm_codes_YYYY.txt` layout or our TSV). A malformed line is a
 * validation error naming its line number; a later duplicate of a code is an error too.
 */
export function parseCodeList(text: string, source = 'codes'): Code[] {
  const seen = new Set<string>();
  const out: Code[] = [];
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) {
      continue;
    }
    const m = LINE.exec(line);
    const title = m?.[3]?.trim() ?? '';
    if (!m || title.length > 400) {
      throw validationError(`${source}:${i + 1}`, 'is not "<ICD-10 code> <title>"');
    }
    const bare = `${m[1]}${m[2]}`.toUpperCase();
    if (seen.has(bare)) {
      throw validationError(`${source}:${i + 1}`, `repeats code ${withDot(bare)}`);
    }
    seen.add(bare);
    out.push({ code: withDot(bare), display: title });
  }
  if (out.length === 0) {
    throw validationError(source, 'holds no codes');
  }
  return out;
}

export interface SearchResult {
  readonly codes: readonly Code[];
  /** How many matched before the limit. */
  readonly total: number;
}

export class CodeList {
  readonly #entries: readonly Entry[];
  readonly #byBare: ReadonlyMap<string, Entry>;
  /** `starter` or `imported`, so the UI can say which list it searches. */
  readonly source: 'starter' | 'imported';

  constructor(codes: readonly Code[], source: 'starter' | 'imported') {
    this.source = source;
    this.#entries = codes
      .map((c) => ({ ...c, bare: c.code.replace('.', '').toUpperCase(), words: words(c.display) }))
      .sort((a, b) => (a.bare < b.bare ? -1 : a.bare > b.bare ? 1 : 0));
    this.#byBare = new Map(this.#entries.map((e) => [e.bare, e]));
  }

  /** The imported list under the data folder if there is one, else the bundled starter list. */
  static load(dataDir?: string): CodeList {
    const imported = dataDir ? importedFile(dataDir) : undefined;
    if (imported && fs.existsSync(imported)) {
      return new CodeList(parseCodeList(fs.readFileSync(imported, 'utf8'), 'codes'), 'imported');
    }
    return new CodeList(parseCodeList(fs.readFileSync(STARTER_FILE, 'utf8'), 'starter'), 'starter');
  }

  get size(): number {
    return this.#entries.length;
  }

  lookup(code: string): Code | undefined {
    const e = this.#byBare.get(code.replace('.', '').trim().toUpperCase());
    return e ? { code: e.code, display: e.display } : undefined;
  }

  /**
   * Code prefix (`f32`, `F32.1`) or words of the title, each matching the start of a word
   * (`maj depr recur`). Exact code first, then code prefixes in code order, then title matches
   * (titles whose first word matches first), in code order.
   */
  search(text: string, limit = 20): SearchResult {
    const q = text.trim();
    const bare = q.replace('.', '').toUpperCase();
    const codeLike = /^[A-Z][0-9][0-9A-Z]{0,5}$/.test(bare);
    const terms = words(q);
    const exact: Entry[] = [];
    const prefix: Entry[] = [];
    const leading: Entry[] = [];
    const other: Entry[] = [];
    for (const e of this.#entries) {
      if (codeLike && e.bare.startsWith(bare)) {
        (e.bare === bare ? exact : prefix).push(e);
      } else if (terms.length > 0 && terms.every((t) => e.words.some((w) => w.startsWith(t)))) {
        ((e.words[0] ?? '').startsWith(terms[0] as string) ? leading : other).push(e);
      }
    }
    const all = [...exact, ...prefix, ...leading, ...other];
    return {
      codes: all.slice(0, limit).map((e) => ({ code: e.code, display: e.display })),
      total: all.length,
    };
  }
}

/** Writes an imported list atomically to the data folder (validated first); returns its size. */
export async function importCodeList(dataDir: string, text: string, source: string): Promise<number> {
  const codes = parseCodeList(text, source);
  const target = importedFile(dataDir);
  await fs.promises.mkdir(path.dirname(target), { recursive: true });
  const temp = `${target}.${process.pid}.tmp`;
  const body = `${codes.map((c) => `${c.code.replace('.', '')}\t${c.display}`).join('\n')}\n`;
  await fs.promises.writeFile(temp, body, { mode: 0o644 });
  await fs.promises.rename(temp, target);
  return codes.length;
}

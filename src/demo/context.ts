import type { RecordBody, RecordKind, Sensitivity } from '../chart/model.ts';
import type { ConditionDef } from './clinical.ts';
import type { Random } from './random.ts';

/** What the record builders of one demo patient share. */

export const DEMO_ANCHOR = '2026-01-01T00:00:00Z';
export const ANCHOR_MS = Date.parse(DEMO_ANCHOR);
export const DAY_MS = 86_400_000;
export const MINUTE_MS = 60_000;

/** The encounter facts later records refer to. */
export interface PlannedEncounter {
  readonly ref: string;
  readonly type: 'visit' | 'therapy-session';
  readonly start: number;
  readonly end: number;
  readonly virtual: boolean;
  readonly clinicianId: string;
}

export interface PatientContext {
  readonly rng: Random;
  readonly therapy: boolean;
  readonly age: number;
  readonly sex: string;
  readonly birthMs: number;
  readonly conditions: readonly ConditionDef[];
  readonly encounters: readonly PlannedEncounter[];
  /** The patient's usual clinician. */
  readonly primaryClinician: string;
  /** Appends a record and returns its `localRef`. */
  add<K extends RecordKind>(
    kind: K,
    body: RecordBody<K>,
    opts: { sensitivity?: Sensitivity; authorId: string; encounterRef?: string },
  ): string;
}

const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n));
const dayCache = new Map<number, string>();

/** `YYYY-MM-DD` for a day number since 1970-01-01 (proleptic Gregorian; H. Hinnant's civil_from_days). */
function civilDate(days: number): string {
  let out = dayCache.get(days);
  if (out === undefined) {
    const z = days + 719_468;
    const era = Math.floor(z / 146_097);
    const doe = z - era * 146_097;
    const yoe = Math.floor(
      (doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365,
    );
    const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
    const mp = Math.floor((5 * doy + 2) / 153);
    const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
    const m = mp < 10 ? mp + 3 : mp - 9;
    const y = yoe + era * 400 + (m <= 2 ? 1 : 0);
    out = `${String(y).padStart(4, '0')}-${pad2(m)}-${pad2(d)}`;
    dayCache.set(days, out);
  }
  return out;
}

/*
 * Formatting without Date objects: the generator formats millions of timestamps, and
 * Date#toISOString dominated its profile.
 */

/** `2025-03-04T09:15:00Z` (no milliseconds). */
export function isoDateTime(ms: number): string {
  const days = Math.floor(ms / DAY_MS);
  const secs = Math.floor((ms - days * DAY_MS) / 1000);
  const h = Math.floor(secs / 3600);
  const min = Math.floor((secs % 3600) / 60);
  return `${civilDate(days)}T${pad2(h)}:${pad2(min)}:${pad2(secs % 60)}Z`;
}

/** `2025-03-04`. */
export const isoDate = (ms: number): string => civilDate(Math.floor(ms / DAY_MS));

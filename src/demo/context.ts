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

/** `2025-03-04T09:15:00Z` (no milliseconds). */
export const isoDateTime = (ms: number): string => `${new Date(ms).toISOString().slice(0, 19)}Z`;
/** `2025-03-04`. */
export const isoDate = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

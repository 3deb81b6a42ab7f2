import type { PlannedPatient, PlannedRecord } from '../chart/model.ts';
import { validationError } from '../errors.ts';
import { type ConditionDef, MEDICAL_CONDITIONS, MENTAL_CONDITIONS } from './clinical.ts';
import {
  ANCHOR_MS,
  DAY_MS,
  isoDateTime,
  MINUTE_MS,
  type PatientContext,
  type PlannedEncounter,
} from './context.ts';
import { demoIdentity } from './identity.ts';
import { writeNotes } from './notes.ts';
import { Random, streamSeed } from './random.ts';
import { addConditions, addObservations, addTreatments } from './records.ts';
import { THERAPY_LOCATIONS, VIRTUAL_LOCATION, VISIT_LOCATIONS } from './vocabulary.ts';

/**
 * Deterministic synthetic patients for demos and benchmarks. Patient `index` of a run depends only
 * on (seed, index), so any slice of a run (`startIndex`, `count`) can be generated on its own and
 * matches the same indexes of a longer run. All dates are relative to a fixed anchor
 * (2026-01-01), never the clock; nothing uses Math.random.
 */

export { DEMO_ANCHOR } from './context.ts';

export interface DemoOptions {
  readonly count: number;
  readonly seed: number;
  /** Index of the first patient; MRNs, local refs and full URLs derive from it. Default 0. */
  readonly startIndex?: number;
}

/** MRNs are a permutation of 8 digits, so indexes stay below this. */
export const MAX_DEMO_INDEX = 100_000_000;

const THERAPISTS = ['demo-clinician-1', 'demo-clinician-2', 'demo-clinician-3', 'demo-clinician-4'];
const PHYSICIANS = ['demo-clinician-5', 'demo-clinician-6', 'demo-clinician-7', 'demo-clinician-8'];
/* Constant tables, hoisted so that generating does not allocate them per patient. */
const EXTRA_CONDITIONS = [
  [0, 55],
  [1, 33],
  [2, 12],
] as const;
const THERAPY_GAPS = [7, 7, 14, 14, 21, 28];
const QUARTERS = [0, 15, 30, 45];
const SESSION_MINUTES = [45, 50, 50, 55];
const VISIT_MINUTES = [15, 20, 30];

export function* generateDemoPatients(options: DemoOptions): Generator<PlannedPatient> {
  const { count, seed } = options;
  const startIndex = options.startIndex ?? 0;
  if (!Number.isSafeInteger(count) || count < 0) {
    throw validationError('count', 'must be a non-negative integer');
  }
  if (!Number.isSafeInteger(seed)) {
    throw validationError('seed', 'must be an integer');
  }
  if (!Number.isSafeInteger(startIndex) || startIndex < 0 || startIndex + count > MAX_DEMO_INDEX) {
    throw validationError(
      'startIndex',
      `must be a non-negative integer with startIndex + count <= ${MAX_DEMO_INDEX}`,
    );
  }
  for (let i = 0; i < count; i++) {
    yield generateDemoPatient(seed, startIndex + i);
  }
}

/** One-line text progress bar, e.g. `[#########.........] 450/1000 45% `. */
export function renderProgress(done: number, total: number, width = 30): string {
  const w = Math.max(1, Math.floor(width));
  const ratio = total > 0 ? Math.min(1, Math.max(0, done / total)) : 1;
  const filled = Math.floor(ratio * w);
  return `[${'#'.repeat(filled)}${'.'.repeat(w - filled)}] ${done}/${total} ${Math.floor(ratio * 100)}% `;
}

/** Patient `index` of the run with `seed`. */
export function generateDemoPatient(seed: number, index: number): PlannedPatient {
  const rng = new Random(streamSeed(seed, index));
  const identity = demoIdentity(rng, index, rng.chance(0.65) ? 'US' : 'NL');
  const birthMs = Date.parse(identity.birthDate);
  const age = Math.floor((ANCHOR_MS - birthMs) / (365.25 * DAY_MS));
  const therapy = age >= 6 && rng.chance(0.45);
  const conditions = chooseConditions(rng, therapy, age);
  const primaryClinician = rng.pick(therapy ? THERAPISTS : PHYSICIANS);

  const records: PlannedRecord[] = [];
  const add: PatientContext['add'] = (kind, body, opts) => {
    const localRef = `demo:${index}:${records.length + 1}`;
    const sensitivity = opts.sensitivity ?? 'normal';
    const { authorId, encounterRef } = opts;
    records.push(
      encounterRef === undefined
        ? { localRef, kind, sensitivity, authorId, body }
        : { localRef, kind, sensitivity, authorId, body, encounterRef },
    );
    return localRef;
  };
  const encounters: PlannedEncounter[] = [];
  const ctx: PatientContext = {
    rng,
    therapy,
    age,
    sex: identity.sex,
    birthMs,
    conditions,
    primaryClinician,
    encounters,
    add,
  };
  planEncounters(ctx, encounters);
  addConditions(ctx);
  addObservations(ctx);
  addTreatments(ctx);
  writeNotes(ctx);
  return { fullUrl: `demo:patient:${index}`, identity, records };
}

function chooseConditions(rng: Random, therapy: boolean, age: number): ConditionDef[] {
  const fits = (c: ConditionDef): boolean => age >= c.minAge && (c.maxAge === undefined || age <= c.maxAge);
  const mental = MENTAL_CONDITIONS.filter(fits);
  const medical = MEDICAL_CONDITIONS.filter(fits);
  const chosen = [rng.pick(therapy && mental.length > 0 ? mental : medical)];
  const extra = rng.weighted(EXTRA_CONDITIONS);
  for (let i = 0; i < extra; i++) {
    const c = rng.pick(rng.chance(therapy ? 0.6 : 0.2) && mental.length > 0 ? mental : medical);
    if (!chosen.includes(c)) {
      chosen.push(c);
    }
  }
  return chosen;
}

/** 2-5 finished encounters on weekdays in office hours, the last one before the anchor. */
function planEncounters(ctx: PatientContext, out: PlannedEncounter[]): void {
  const { rng, therapy } = ctx;
  const count = rng.int(2, 5);
  const gaps: number[] = [];
  let span = 0;
  for (let i = 1; i < count; i++) {
    const gap = therapy ? rng.pick(THERAPY_GAPS) : rng.int(14, 120);
    gaps.push(gap);
    span += gap + 2;
  }
  const lastDay = Math.floor(ANCHOR_MS / DAY_MS) - 3;
  let day = Math.max(lastDay - span - rng.int(0, 540), Math.ceil(ctx.birthMs / DAY_MS) + 30);
  const label = ctx.conditions[0]?.display ?? 'general health';
  for (let i = 0; i < count; i++) {
    const weekday = (day + 4) % 7; // 1970-01-01 was a Thursday; 0 = Sunday, 6 = Saturday
    const workDay = weekday === 6 ? day + 2 : weekday === 0 ? day + 1 : day;
    const type = therapy && !(i > 0 && rng.chance(0.1)) ? 'therapy-session' : 'visit';
    const session = type === 'therapy-session';
    const virtual = rng.chance(session ? 0.35 : 0.15);
    const start = workDay * DAY_MS + (rng.int(8, 16) * 60 + rng.pick(QUARTERS)) * MINUTE_MS;
    const minutes = session ? (i === 0 ? 60 : rng.pick(SESSION_MINUTES)) : rng.pick(VISIT_MINUTES);
    const end = start + minutes * MINUTE_MS;
    const clinicianId = rng.chance(0.85) ? ctx.primaryClinician : rng.pick(session ? THERAPISTS : PHYSICIANS);
    const first = session ? 'Intake assessment' : 'New patient visit';
    const ref = ctx.add(
      'encounter',
      {
        type,
        status: 'finished',
        class: virtual ? 'VR' : 'AMB',
        start: isoDateTime(start),
        end: isoDateTime(end),
        reason: i === 0 ? `${first}: ${label}` : `Follow-up: ${label}`,
        location: virtual ? VIRTUAL_LOCATION : rng.pick(session ? THERAPY_LOCATIONS : VISIT_LOCATIONS),
        clinicianId,
      },
      { authorId: clinicianId },
    );
    out.push({ ref, type, start, end, virtual, clinicianId });
    day = workDay + (gaps[i] ?? 0);
  }
}

import type { RecordBody, Sensitivity } from '../chart/model.ts';
import {
  type ConditionDef,
  ICD10,
  LOINC,
  MEDICATIONS,
  type MedicationDef,
  type MedicationKey,
  OBSERVATIONS,
  type ObservationKey,
  PROCEDURES,
  type ProcedureKey,
  RXNORM,
  SMOKING_STATUSES,
  SNOMED,
  UCUM,
} from './clinical.ts';
import { ANCHOR_MS, DAY_MS, isoDate, isoDateTime, MINUTE_MS, type PatientContext } from './context.ts';
import { THERAPY_GOALS } from './vocabulary.ts';

/** Conditions, observations and treatments of one demo patient. */

const LAB_KEYS: ReadonlySet<ObservationKey> = new Set(['hba1c', 'glucose', 'cholesterol']);
const SCORE_MAX: Partial<Record<ObservationKey, number>> = { phq9: 27, gad7: 21, pain: 10 };

/* Constant tables, hoisted so that generating does not allocate them per record. */
const CONDITION_STATUS = [
  ['active', 80],
  ['remission', 8],
  ['resolved', 7],
  ['recurrence', 5],
] as const;
const VERIFICATION = [
  ['confirmed', 85],
  ['provisional', 10],
  ['differential', 5],
] as const;
const OBSERVATION_STATUS = [
  ['final', 95],
  ['amended', 3],
  ['preliminary', 2],
] as const;
const MEDICATION_STATUS = [
  ['active', 70],
  ['completed', 20],
  ['stopped', 10],
] as const;
const PLAN_STATUS = [
  ['active', 80],
  ['completed', 15],
  ['draft', 5],
] as const;
const STOP_REASONS = [
  'Stopped because of side effects.',
  'Stopped at patient request.',
  'Switched to another agent.',
];
const PLAN_SESSIONS = [8, 12, 16, 20];
const MODALITIES = [
  'cognitive behavioural therapy',
  'psychodynamic psychotherapy',
  'acceptance and commitment therapy',
  'interpersonal therapy',
];
const FREQUENCIES = ['weekly', 'weekly, then fortnightly'];
const REVIEW_EVERY = ['four', 'six', 'eight'];
const VITALS: readonly ObservationKey[] = ['weight', 'systolic', 'heartRate', 'height'];
const ADULT_VITALS: readonly ObservationKey[] = [...VITALS, 'smoking'];
const THERAPY_TREATMENTS = ['proc', 'med', 'proc'] as const;
const CLINIC_TREATMENTS = ['med', 'med', 'proc'] as const;

/** The distinct items of a per-condition list, in first-seen order (lists are tiny). */
function union<T>(conditions: readonly ConditionDef[], list: (c: ConditionDef) => readonly T[]): T[] {
  const out: T[] = [];
  for (const c of conditions) {
    for (const item of list(c)) {
      if (!out.includes(item)) {
        out.push(item);
      }
    }
  }
  return out;
}

const sensitivityOf = (c: ConditionDef | undefined): Sensitivity => (c?.restricted ? 'restricted' : 'normal');

export function addConditions(ctx: PatientContext): void {
  const { rng, encounters } = ctx;
  const first = encounters[0];
  if (!first) {
    return;
  }
  for (const def of ctx.conditions) {
    const atFirst = rng.chance(0.5);
    const earliest = Math.max(ctx.birthMs, first.start - 3650 * DAY_MS);
    const onsetMs = atFirst ? first.start : earliest + rng.next() * (first.start - earliest);
    const status = rng.weighted(CONDITION_STATUS);
    const body: RecordBody<'condition'> = {
      code: { system: ICD10, code: def.code, display: def.display },
      clinicalStatus: def.maxAge !== undefined && def.maxAge < 18 && rng.chance(0.7) ? 'resolved' : status,
      verificationStatus: rng.weighted(VERIFICATION),
      onset: isoDate(onsetMs),
    };
    if (body.clinicalStatus === 'resolved' || body.clinicalStatus === 'remission') {
      body.abatement = isoDate(onsetMs + rng.next() * (ANCHOR_MS - DAY_MS - onsetMs));
    }
    if (rng.chance(0.2)) {
      body.note = atFirst
        ? 'Diagnosis made at initial assessment.'
        : 'Diagnosis reported by a previous provider.';
    }
    ctx.add('condition', body, {
      sensitivity: sensitivityOf(def),
      authorId: atFirst ? first.clinicianId : ctx.primaryClinician,
      ...(atFirst ? { encounterRef: first.ref } : {}),
    });
  }
}

interface ObsPlan {
  readonly key: ObservationKey;
  readonly enc: number;
  readonly affected: boolean;
}

export function addObservations(ctx: PatientContext): void {
  const { rng, encounters, conditions } = ctx;
  const last = encounters.length - 1;
  const wanted = rng.int(2, 6);
  const affected = union(conditions, (c) => c.observations);
  const plans: ObsPlan[] = [];
  const push = (key: ObservationKey, enc: number): void => {
    if (plans.length < wanted && !plans.some((p) => p.key === key && p.enc === enc)) {
      plans.push({ key, enc, affected: affected.includes(key) });
      // Blood pressure is taken as a pair when there is room for both readings.
      if (key === 'systolic') {
        push('diastolic', enc);
      }
    }
  };
  const primary = conditions[0]?.observations[0];
  if (ctx.therapy && (primary === 'phq9' || primary === 'gad7')) {
    push(primary, 0);
    push(primary, last);
  }
  for (const key of rng.sample(affected, 4)) {
    push(key, rng.int(0, last));
  }
  const vitals = ctx.age >= 16 ? ADULT_VITALS : VITALS;
  for (let tries = 0; plans.length < wanted && tries < 20; tries++) {
    push(rng.pick(vitals), rng.int(0, last));
  }
  // The first measurement of a score is the baseline; later ones show a response to treatment.
  const baseline = new Map<ObservationKey, number>();
  for (const plan of plans.sort((a, b) => a.enc - b.enc)) {
    addObservation(ctx, plan, baseline);
  }
}

function addObservation(ctx: PatientContext, plan: ObsPlan, baseline: Map<ObservationKey, number>): void {
  const { rng } = ctx;
  const enc = ctx.encounters[plan.enc] ?? ctx.encounters[0];
  if (!enc) {
    return;
  }
  const def = OBSERVATIONS[plan.key];
  const lab = LAB_KEYS.has(plan.key);
  const effective = lab
    ? enc.start - rng.int(1, 7) * DAY_MS - rng.int(60, 180) * MINUTE_MS
    : enc.start + rng.int(2, 20) * MINUTE_MS;
  const body: RecordBody<'observation'> = {
    status: rng.weighted(OBSERVATION_STATUS),
    code: { system: LOINC, code: def.code, display: def.display },
    effective: isoDateTime(effective),
  };
  if (plan.key === 'smoking') {
    body.value = { text: rng.pick(SMOKING_STATUSES) };
  } else {
    const unit = def.unit ?? '1';
    const value = measure(ctx, plan, baseline);
    body.value = { quantity: { value, unit, system: UCUM, code: unit } };
    if (def.referenceRange) {
      body.referenceRange = def.referenceRange;
    }
  }
  if ((plan.key === 'systolic' || plan.key === 'diastolic') && rng.chance(0.3)) {
    body.note = 'Seated, left arm, after five minutes of rest.';
  }
  ctx.add('observation', body, {
    authorId: enc.clinicianId,
    ...(lab ? {} : { encounterRef: enc.ref }),
  });
}

function measure(ctx: PatientContext, plan: ObsPlan, baseline: Map<ObservationKey, number>): number {
  const { rng, age } = ctx;
  const male = ctx.sex === 'male';
  const obese = ctx.conditions.some((c) => c.code === 'E66.9');
  switch (plan.key) {
    case 'weight': {
      const base =
        age < 13
          ? rng.float(2.4, 3.4) * age + 8
          : age < 18
            ? rng.float(42, 72)
            : male
              ? rng.float(62, 102)
              : rng.float(50, 88);
      return Math.round((base + (obese ? rng.float(22, 40) : 0)) * 10) / 10;
    }
    case 'height':
      return age < 13
        ? Math.round(76 + 6 * age + rng.float(-6, 6))
        : age < 18
          ? rng.int(148, 186)
          : male
            ? rng.int(164, 194)
            : rng.int(152, 180);
    case 'heartRate':
      if (age < 12) {
        return rng.int(78, 115);
      }
      return plan.affected ? rng.int(70, 104) : rng.int(58, 90);
    default: {
      const def = OBSERVATIONS[plan.key];
      const [lo, hi] = plan.affected && def.affected ? def.affected : def.normal;
      const previous = baseline.get(plan.key);
      let value = rng.float(lo, hi, def.decimals);
      if (previous !== undefined && SCORE_MAX[plan.key] !== undefined) {
        value = Math.round(previous * rng.float(0.35, 0.95, 2));
      }
      if (previous === undefined) {
        baseline.set(plan.key, value);
      }
      return Math.min(value, SCORE_MAX[plan.key] ?? value);
    }
  }
}

export function addTreatments(ctx: PatientContext): void {
  const { rng, conditions, encounters } = ctx;
  const wanted = rng.int(1, 3);
  let added = 0;
  const primary = conditions[0];
  if (ctx.therapy && primary?.goals) {
    addTherapyPlan(ctx, primary);
    added++;
  }
  const meds: string[] = union(conditions, (c) => c.medications);
  const procs: string[] = union(conditions, (c) => c.procedures);
  // Therapy patients are less often on medication; in the clinic most treatment is a prescription.
  for (const kind of rng.sample(ctx.therapy ? THERAPY_TREATMENTS : CLINIC_TREATMENTS, 3)) {
    if (added >= wanted) {
      break;
    }
    const pool = kind === 'med' ? meds : procs;
    if (pool.length === 0) {
      continue;
    }
    const key = rng.pick(pool);
    const owner = conditions.find((c) =>
      (kind === 'med' ? c.medications : c.procedures).includes(key as never),
    );
    const enc = rng.pick(encounters);
    if (kind === 'med') {
      addMedication(ctx, MEDICATIONS[key as MedicationKey], enc.start, owner);
    } else {
      const proc = PROCEDURES[key as ProcedureKey];
      ctx.add(
        'procedure',
        {
          status: 'completed',
          code: { system: SNOMED, code: proc.code, display: proc.display },
          performed: isoDateTime(enc.start + rng.int(5, 30) * MINUTE_MS),
        },
        { sensitivity: sensitivityOf(owner), authorId: enc.clinicianId, encounterRef: enc.ref },
      );
    }
    pool.splice(pool.indexOf(key), 1);
    added++;
  }
}

function addMedication(ctx: PatientContext, def: MedicationDef, startMs: number, owner?: ConditionDef): void {
  const { rng } = ctx;
  const status = rng.weighted(MEDICATION_STATUS);
  const period: RecordBody<'medication'>['period'] = { start: isoDate(startMs) };
  if (status !== 'active') {
    period.end = isoDate(Math.min(startMs + rng.int(14, 180) * DAY_MS, ANCHOR_MS - DAY_MS));
  }
  const body: RecordBody<'medication'> = {
    status,
    medication: { system: RXNORM, code: def.code, display: def.display },
    dosage: { text: def.dosage, route: def.route },
    period,
  };
  if (def.dose) {
    body.dosage.dose = { value: def.dose.value, unit: def.dose.unit, system: UCUM, code: def.dose.code };
  }
  if (status === 'stopped') {
    body.note = rng.pick(STOP_REASONS);
  }
  ctx.add('medication', body, { sensitivity: sensitivityOf(owner), authorId: ctx.primaryClinician });
}

function addTherapyPlan(ctx: PatientContext, primary: ConditionDef): void {
  const { rng, encounters } = ctx;
  const startMs = encounters[0]?.start ?? ANCHOR_MS - 90 * DAY_MS;
  const themes = union(ctx.conditions, (c) => (c.goals ? [c.goals] : []));
  const goals = rng.sample(THERAPY_GOALS[primary.goals ?? 'mood'], rng.int(2, 3));
  const secondary = themes[1];
  if (secondary && rng.chance(0.6)) {
    goals.push(rng.pick(THERAPY_GOALS[secondary]));
  }
  const status = rng.weighted(PLAN_STATUS);
  const sessions = rng.pick(PLAN_SESSIONS);
  // A plan still running ends after the anchor; a completed one ended before it.
  const plannedEnd = startMs + sessions * 7 * DAY_MS;
  const endMs =
    status === 'completed'
      ? Math.min(plannedEnd, ANCHOR_MS - DAY_MS)
      : Math.max(plannedEnd, ANCHOR_MS + rng.int(4, 16) * 7 * DAY_MS);
  ctx.add(
    'therapy-plan',
    {
      status,
      title: `Individual therapy plan: ${primary.display}`,
      description: `${sessions} sessions of ${rng.pick(MODALITIES)}, ${rng.pick(FREQUENCIES)}; progress reviewed every ${rng.pick(REVIEW_EVERY)} sessions.`,
      goals,
      period: { start: isoDate(startMs), end: isoDate(endMs) },
    },
    { sensitivity: sensitivityOf(primary), authorId: ctx.primaryClinician },
  );
}

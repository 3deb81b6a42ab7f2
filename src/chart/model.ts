import { z } from 'zod';
import { validationError } from '../errors.ts';

/**
 * The record model: what the identity store and the clinical store hold. Each shape is
 * validated before it is encrypted; validation messages name the field, never its value.
 * Field names follow FHIR R4 where one exists, so import and export are plain mappings.
 */

const isoDate = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date YYYY-MM-DD');
const isoDateTime = z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time with zone' });
const text = (max: number) =>
  z.string().trim().min(1, 'must not be empty').max(max, `must be at most ${max} characters`);

export const Coding = z.object({
  system: text(200),
  code: text(100),
  display: text(500).optional(),
});
export type Coding = z.infer<typeof Coding>;

export const IdentifierType = z.enum(['mrn', 'national', 'insurance']);
export const Identifier = z.object({
  type: IdentifierType,
  /** Issuing system, e.g. `http://hl7.org/fhir/sid/us-ssn` or `http://fhir.nl/fhir/NamingSystem/bsn`. */
  system: text(200).optional(),
  value: text(100),
});
export type Identifier = z.infer<typeof Identifier>;

export const Address = z.object({
  lines: z.array(text(200)).max(4).default([]),
  city: text(100).optional(),
  postalCode: text(20).optional(),
  state: text(100).optional(),
  country: text(100).optional(),
});

export const PatientIdentity = z.object({
  name: z.object({
    given: z.array(text(100)).min(1, 'must have at least one given name').max(5),
    family: text(100),
    preferred: text(100).optional(),
  }),
  birthDate: isoDate,
  /** Administrative sex (FHIR Patient.gender). */
  sex: z.enum(['female', 'male', 'other', 'unknown']),
  /** Gender identity in the patient's words, if recorded. */
  gender: text(100).optional(),
  address: Address.optional(),
  phone: text(40).optional(),
  email: z.email('must be an e-mail address').max(254).optional(),
  identifiers: z.array(Identifier).max(10).default([]),
});
export type PatientIdentity = z.infer<typeof PatientIdentity>;

export const Quantity = z.object({
  value: z.number().finite(),
  unit: text(50),
  system: text(200).optional(),
  code: text(50).optional(),
});

export const Encounter = z.object({
  /** `visit` or `therapy-session` (and other practice-defined types). */
  type: z.enum(['visit', 'therapy-session', 'telehealth', 'home-visit', 'group-session']),
  status: z.enum(['planned', 'in-progress', 'finished', 'cancelled']),
  /** FHIR v3 ActCode: AMB (ambulatory), VR (virtual), HH (home health). */
  class: z.enum(['AMB', 'VR', 'HH']),
  start: isoDateTime,
  end: isoDateTime.optional(),
  reason: text(1000).optional(),
  location: text(200).optional(),
  clinicianId: text(100).optional(),
});

export const Observation = z.object({
  status: z.enum(['registered', 'preliminary', 'final', 'amended', 'cancelled', 'entered-in-error']),
  code: Coding,
  value: z.union([z.object({ quantity: Quantity }), z.object({ text: text(10000) })]).optional(),
  referenceRange: z
    .object({
      low: z.number().finite().optional(),
      high: z.number().finite().optional(),
      unit: text(50).optional(),
      text: text(500).optional(),
    })
    .optional(),
  effective: isoDateTime,
  encounterId: z.uuid().optional(),
  note: text(10000).optional(),
});

export const Condition = z.object({
  /** ICD-10 (`http://hl7.org/fhir/sid/icd-10`) or SNOMED CT (`http://snomed.info/sct`). */
  code: Coding,
  text: text(1000).optional(),
  clinicalStatus: z.enum(['active', 'recurrence', 'relapse', 'inactive', 'remission', 'resolved']),
  verificationStatus: z
    .enum(['unconfirmed', 'provisional', 'differential', 'confirmed', 'refuted'])
    .optional(),
  onset: isoDate.optional(),
  abatement: isoDate.optional(),
  encounterId: z.uuid().optional(),
  note: text(10000).optional(),
});

export const Procedure = z.object({
  status: z.enum(['preparation', 'in-progress', 'not-done', 'on-hold', 'stopped', 'completed', 'unknown']),
  code: Coding,
  performed: isoDateTime.optional(),
  encounterId: z.uuid().optional(),
  note: text(10000).optional(),
});

export const Medication = z.object({
  status: z.enum(['active', 'completed', 'intended', 'stopped', 'on-hold', 'unknown', 'not-taken']),
  medication: Coding,
  dosage: z.object({
    text: text(1000),
    route: text(100).optional(),
    dose: Quantity.optional(),
  }),
  period: z.object({ start: isoDate.optional(), end: isoDate.optional() }).default({}),
  note: text(10000).optional(),
});

export const TherapyPlan = z.object({
  status: z.enum(['draft', 'active', 'on-hold', 'revoked', 'completed', 'unknown']),
  title: text(200),
  description: text(10000).optional(),
  goals: z.array(text(1000)).max(50).default([]),
  period: z.object({ start: isoDate.optional(), end: isoDate.optional() }).default({}),
});

export const Note = z.object({
  title: text(200).optional(),
  body: text(100000),
  date: isoDateTime,
  encounterId: z.uuid().optional(),
  /** Set on an amendment: why the original was amended. */
  amendmentReason: text(2000).optional(),
});

export const DocumentMeta = z.object({
  title: text(200),
  description: text(2000).optional(),
  contentType: text(100),
  date: isoDateTime,
  fileName: text(255).optional(),
  size: z.number().int().nonnegative().optional(),
  category: text(100).optional(),
  /** The encrypted content in the file store, and its SHA-256 (checked on every read). */
  blobId: z
    .string()
    .regex(/^[0-9a-f]{32}$/, 'must be a blob id')
    .optional(),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 in hex')
    .optional(),
});

/** The clinical record kinds and their body shapes. */
export const RecordBodies = {
  encounter: Encounter,
  observation: Observation,
  condition: Condition,
  procedure: Procedure,
  medication: Medication,
  'therapy-plan': TherapyPlan,
  note: Note,
  document: DocumentMeta,
} as const;

export type RecordKind = keyof typeof RecordBodies;
export const RecordKinds = Object.keys(RecordBodies) as RecordKind[];
export type RecordBody<K extends RecordKind = RecordKind> = z.infer<(typeof RecordBodies)[K]>;

/** Sensitivity of a record; notes may be restricted or psychotherapy notes (45 CFR 164.508(a)(2)). */
export const Sensitivity = z.enum(['normal', 'restricted', 'psychotherapy']);
export type Sensitivity = z.infer<typeof Sensitivity>;

/** A clinical record as the gate returns it. */
export interface ClinicalRecord<K extends RecordKind = RecordKind> {
  readonly id: string;
  readonly kind: K;
  readonly version: number;
  readonly sensitivity: Sensitivity;
  readonly authorId: string;
  readonly status: 'active' | 'entered-in-error';
  readonly createdAt: Date;
  readonly updatedAt: Date;
  /** Notes only: who signed it and when (null while a draft). A signed note cannot be edited. */
  readonly signed?: { readonly by: string; readonly at: Date } | null;
  /** Notes only: the note this one amends, and the amendment that superseded this one. */
  readonly amends?: string | null;
  readonly amendedBy?: string | null;
  readonly body: RecordBody<K>;
}

export interface Patient {
  readonly id: string;
  readonly version: number;
  readonly active: boolean;
  /** Set on a duplicate merged into another patient: that patient's id (the UI follows it). */
  readonly mergedInto?: string;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly identity: PatientIdentity;
}

/** Input for creating a clinical record. */
export interface NewRecord<K extends RecordKind = RecordKind> {
  readonly kind: K;
  readonly body: RecordBody<K>;
  readonly sensitivity?: Sensitivity;
  /** Consent categories beyond those derived from codes (e.g. a note about substance use). */
  readonly categories?: readonly string[];
  /** Author of the record (a user id); defaults to the acting user. */
  readonly authorId?: string;
}

/**
 * A patient and their records ready to be loaded through the gate, as produced by the FHIR
 * importer and the demo generator. Records are ordered so that an encounter comes before the
 * records that point to it; `encounterRef` names such an encounter by its `localRef`, and the
 * loader fills in `body.encounterId` with the id the gate gave it.
 */
export interface PlannedPatient {
  /** Where the patient came from: the bundle entry's `fullUrl`, or a demo label. */
  readonly fullUrl: string;
  readonly identity: PatientIdentity;
  readonly records: readonly PlannedRecord[];
}

export interface PlannedRecord {
  /** Unique within the plan (the bundle entry's `fullUrl`). */
  readonly localRef: string;
  readonly kind: RecordKind;
  readonly sensitivity: Sensitivity;
  readonly authorId?: string;
  /** Body without `encounterId`; the loader sets it from `encounterRef`. */
  readonly body: RecordBody;
  readonly encounterRef?: string;
}

/** Parses a body for a kind, naming the first failing field (`body.code.system`). */
export function parseBody<K extends RecordKind>(kind: K, body: unknown, prefix = 'body'): RecordBody<K> {
  return parseWith(RecordBodies[kind], body, prefix) as RecordBody<K>;
}

export function parseIdentity(input: unknown, prefix = 'identity'): PatientIdentity {
  return parseWith(PatientIdentity, input, prefix);
}

function parseWith<T extends z.ZodType>(schema: T, input: unknown, prefix: string): z.infer<T> {
  const r = schema.safeParse(input);
  if (r.success) {
    return r.data;
  }
  const issue = r.error.issues[0];
  const field = [prefix, ...(issue?.path ?? [])].reduce<string>(
    (acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)),
    '',
  );
  throw validationError(field, issue?.message ?? 'is invalid');
}

/**
 * The grant tables: what each role may see and write, section by section and field by field
 * (HIPAA 45 CFR 164.502(b) minimum necessary). `docs/access-control.md` prints these tables;
 * a test checks that the document and this file agree.
 *
 * A section is a part of a patient's chart: the identity store is split into `demographics`
 * and `contact`; each clinical record kind is its own section. A field list names the top-level
 * fields of that section's body the role sees; `ALL` means every field. A field not listed is
 * absent from what the gate returns (never masked with a fake value).
 */

export const ALL = '*' as const;
export type Fields = typeof ALL | readonly string[];

export const IDENTITY_SECTIONS = ['demographics', 'contact'] as const;
export const CLINICAL_SECTIONS = [
  'encounter',
  'observation',
  'condition',
  'procedure',
  'medication',
  'therapy-plan',
  'note',
  'document',
] as const;
/**
 * `messages` are the secure messages between staff and the patient (src/chart/messages.service.ts):
 * clinical-ish communication, so only those who read the clinical chart in care read them, and the
 * patient in their own threads. Not a record kind: it is outside `CLINICAL_SECTIONS`.
 */
export const SECTIONS = [...IDENTITY_SECTIONS, 'appointments', 'messages', ...CLINICAL_SECTIONS] as const;
export type Section = (typeof SECTIONS)[number];
export type ClinicalSection = (typeof CLINICAL_SECTIONS)[number];

/** Which identity fields belong to which identity section. */
export const IDENTITY_FIELDS: Readonly<Record<(typeof IDENTITY_SECTIONS)[number], readonly string[]>> = {
  demographics: ['name', 'birthDate', 'sex', 'gender', 'identifiers'],
  contact: ['address', 'phone', 'email'],
};

/**
 * The fields of an appointment (src/chart/appointments.service.ts). `reason` (the reason for the
 * visit, and a waiting-list note) is clinical; the others say who sees whom, when and where.
 */
export const APPOINTMENT_FIELDS = [
  'start',
  'end',
  'clinicianId',
  'room',
  'status',
  'seriesId',
  'cancelCode',
  'reason',
] as const;
/** Appointments without the reason for the visit: what front desk books and sees. */
const APPOINTMENTS_NO_REASON: readonly string[] = APPOINTMENT_FIELDS.filter((f) => f !== 'reason');

export const STAFF_ROLES = [
  'admin',
  'clinician',
  'nurse',
  'frontdesk',
  'billing',
  'privacy_officer',
] as const;
export const ROLES = [...STAFF_ROLES, 'patient'] as const;
export type Role = (typeof ROLES)[number];

/**
 * Whose charts a role reaches: `care-team` (only while on the patient's care team, or under a
 * break-the-glass grant), `practice` (every patient of the practice except restricted ones,
 * which need explicit care-team membership), `self` (the patient's own chart), `none`.
 */
export type Scope = 'care-team' | 'practice' | 'self' | 'none';

export interface RoleGrant {
  readonly scope: Scope;
  /** Sections the role reads, with the visible fields. */
  readonly read: Readonly<Partial<Record<Section, Fields>>>;
  /** Sections the role writes (create and update). */
  readonly write: readonly Section[];
  /** Record sensitivities the role reads (psychotherapy has its own rule: author and shares only). */
  readonly sensitivities: readonly ('normal' | 'restricted' | 'psychotherapy')[];
  /** Manage care-team membership (add, end). */
  readonly careTeam: boolean;
  /** Record and change consent directives. */
  readonly consent: boolean;
  /** Flag a patient restricted / unrestricted. */
  readonly flag: boolean;
  /** May request break-the-glass access. */
  readonly breakGlass: boolean;
  /** Per-patient export (right of access). */
  readonly export: boolean;
  /** Release records to the patient portal. */
  readonly release: boolean;
  /** Look up a patient's audit pseudonym for an access report. */
  readonly report: boolean;
  /**
   * Export every patient of the practice as one encrypted archive (`custos export --all`,
   * `POST /api/v1/exports`): with a fresh re-authentication and a stated purpose; psychotherapy
   * notes are never in it (src/chart/export.service.ts).
   */
  readonly bulkExport: boolean;
}

const clinicalAll = Object.fromEntries(CLINICAL_SECTIONS.map((s) => [s, ALL])) as Record<
  ClinicalSection,
  Fields
>;

const NONE: RoleGrant = {
  scope: 'none',
  read: {},
  write: [],
  sensitivities: [],
  careTeam: false,
  consent: false,
  flag: false,
  breakGlass: false,
  export: false,
  release: false,
  report: false,
  bulkExport: false,
};

export const GRANTS: Readonly<Record<Role, RoleGrant>> = deepFreeze({
  /** Accounts, roles, settings, blocks: no chart content at all. */
  admin: NONE,
  /** Physician or therapist: the full chart of care-team patients. */
  clinician: {
    scope: 'care-team',
    read: { demographics: ALL, contact: ALL, appointments: ALL, messages: ALL, ...clinicalAll },
    write: ['demographics', 'contact', 'appointments', 'messages', ...CLINICAL_SECTIONS],
    sensitivities: ['normal', 'restricted', 'psychotherapy'],
    careTeam: true,
    consent: true,
    flag: true,
    breakGlass: true,
    export: true,
    release: true,
    report: false,
    bulkExport: false,
  },
  /** Nurse or assistant: the care-team chart except restricted and psychotherapy records. */
  nurse: {
    scope: 'care-team',
    read: { demographics: ALL, contact: ALL, appointments: ALL, messages: ALL, ...clinicalAll },
    write: ['demographics', 'contact', 'appointments', 'messages', ...CLINICAL_SECTIONS],
    sensitivities: ['normal'],
    careTeam: false,
    consent: false,
    flag: false,
    breakGlass: true,
    export: true,
    release: false,
    report: false,
    bulkExport: false,
  },
  /**
   * Front desk: demographics, contact details and appointments of the practice's patients; never
   * the reason for a visit (clinical).
   */
  frontdesk: {
    scope: 'practice',
    read: { demographics: ALL, contact: ALL, appointments: APPOINTMENTS_NO_REASON },
    write: ['demographics', 'contact', 'appointments'],
    sensitivities: [],
    careTeam: true,
    consent: true,
    flag: false,
    breakGlass: false,
    export: false,
    release: false,
    report: false,
    bulkExport: false,
  },
  /** Billing: who, where to send the invoice, and diagnosis and treatment codes with dates. */
  billing: {
    scope: 'practice',
    read: {
      demographics: ['name', 'birthDate', 'sex', 'identifiers'],
      contact: ['address'],
      encounter: ['type', 'class', 'status', 'start', 'end'],
      condition: ['code', 'clinicalStatus', 'verificationStatus', 'onset', 'abatement'],
      procedure: ['status', 'code', 'performed'],
      medication: ['status', 'medication', 'period'],
    },
    write: [],
    sensitivities: ['normal'],
    careTeam: false,
    consent: false,
    flag: false,
    breakGlass: false,
    export: false,
    release: false,
    report: false,
    bulkExport: false,
  },
  /**
   * Audit reports, break-glass and access reviews, consent and restriction: no chart content.
   * The one exception is the bulk export, which the officer makes but cannot read (it is an
   * encrypted archive; see src/chart/export.service.ts).
   */
  privacy_officer: {
    ...NONE,
    scope: 'practice',
    consent: true,
    flag: true,
    report: true,
    bulkExport: true,
  },
  /** A patient through the portal: their own chart, released records only. */
  patient: {
    scope: 'self',
    read: { demographics: ALL, contact: ALL, appointments: ALL, messages: ALL, ...clinicalAll },
    write: ['messages'],
    sensitivities: ['normal', 'restricted'],
    careTeam: false,
    consent: false,
    flag: false,
    breakGlass: false,
    export: true,
    release: false,
    report: false,
    bulkExport: false,
  },
});

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) {
      deepFreeze(v);
    }
  }
  return o;
}

export const isRole = (r: string): r is Role => (ROLES as readonly string[]).includes(r);

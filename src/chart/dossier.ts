import { CLINICAL_SECTIONS, type ClinicalSection } from '../access/grants.ts';
import type { View } from '../access/policy.ts';
import type { ClinicalRecord, Patient, RecordBody } from './model.ts';

/**
 * The dossier's front page: the identity the caller may see, and per clinical section they may
 * see, how many current records it holds and when it last changed, plus the lists a clinician
 * looks at first (active problems, current medications, active therapy plans, recent encounters,
 * the caller's unsigned drafts). Built from what the gate already projected for the caller, so a
 * role sees in the summary exactly the fields it sees in the records. Entered-in-error records
 * are left out.
 */
export interface Dossier {
  readonly patient: Patient;
  readonly sections: Partial<
    Record<ClinicalSection, { readonly count: number; readonly latest: Date | null }>
  >;
  readonly problems: readonly Summary[];
  readonly medications: readonly Summary[];
  readonly plans: readonly Summary[];
  readonly recentEncounters: readonly Summary[];
  /** The caller's own notes not yet signed. */
  readonly drafts: readonly Summary[];
}

/** One record in a summary list: its id and version, and the body fields the list shows (as projected). */
export interface Summary {
  readonly id: string;
  readonly version: number;
  readonly [field: string]: unknown;
}

const RECENT_ENCOUNTERS = 5;

const pick = (r: ClinicalRecord, fields: readonly string[]): Summary => {
  const body = r.body as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = { id: r.id, version: r.version };
  for (const f of fields) {
    if (body[f] !== undefined) {
      out[f] = body[f];
    }
  }
  return out as Summary;
};

const bodyOf = <K extends ClinicalRecord['kind']>(r: ClinicalRecord, _k: K) =>
  r.body as unknown as Partial<RecordBody<K>>;

export function summarize(
  patient: Patient,
  records: readonly ClinicalRecord[],
  view: View,
  callerId: string,
): Dossier {
  const current = records.filter((r) => r.status === 'active' && !r.amendedBy);
  const sections: Partial<Record<ClinicalSection, { count: number; latest: Date | null }>> = {};
  for (const s of CLINICAL_SECTIONS) {
    if (view[s] === undefined) {
      continue;
    }
    const of = current.filter((r) => r.kind === s);
    const latest = of.reduce<Date | null>((m, r) => (m === null || r.updatedAt > m ? r.updatedAt : m), null);
    sections[s] = { count: of.length, latest };
  }
  const kind = <K extends ClinicalRecord['kind']>(k: K) => current.filter((r) => r.kind === k);
  const problems = kind('condition')
    .filter((r) => {
      const status = bodyOf(r, 'condition').clinicalStatus;
      return status === undefined || ['active', 'recurrence', 'relapse'].includes(status);
    })
    .map((r) => pick(r, ['code', 'clinicalStatus', 'verificationStatus', 'onset']));
  const medications = kind('medication')
    .filter((r) => {
      const status = bodyOf(r, 'medication').status;
      return status === undefined || status === 'active' || status === 'intended';
    })
    .map((r) => pick(r, ['medication', 'status', 'dosage', 'period']));
  const plans = kind('therapy-plan')
    .filter((r) => {
      const status = bodyOf(r, 'therapy-plan').status;
      return status === undefined || status === 'active';
    })
    .map((r) => pick(r, ['title', 'status', 'goals', 'period']));
  const startOf = (r: ClinicalRecord) => String(bodyOf(r, 'encounter').start ?? r.createdAt.toISOString());
  const recentEncounters = kind('encounter')
    .sort((a, b) => Date.parse(startOf(b)) - Date.parse(startOf(a)))
    .slice(0, RECENT_ENCOUNTERS)
    .map((r) => pick(r, ['type', 'class', 'status', 'start', 'end', 'location']));
  const drafts = kind('note')
    .filter((r) => r.signed === null && r.authorId === callerId)
    .map((r) => pick(r, ['title', 'date']));
  return { patient, sections, problems, medications, plans, recentEncounters, drafts };
}

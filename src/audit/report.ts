import {
  type Expression,
  type ExpressionBuilder,
  type Kysely,
  type Selectable,
  type SqlBool,
  sql,
} from 'kysely';
import type { CoreDb } from '../db/schema.ts';

/**
 * Read-side reports over the audit trail (DESIGN.md "The audit trail", "read"): who has seen a
 * patient's record, what one user did, logins, and anomalies (src/audit/anomalies.ts). Rows hold
 * ids, pseudonyms, codes and times only (invariant 5), never health data.
 *
 * Windows are half-open: `since` is inclusive, `until` exclusive, both compared with `at`.
 */
export interface ReportWindow {
  readonly since?: Date | undefined;
  readonly until?: Date | undefined;
  /** Only entries of this practice (the CLI passes its practice; absent: every practice). */
  readonly practiceId?: string | undefined;
}

/** One audit entry as a report shows it. */
export interface EntryRow {
  readonly seq: string;
  readonly at: Date;
  readonly actorKind: string;
  readonly actorId: string;
  readonly role: string;
  readonly onBehalfOf: string | null;
  readonly action: string;
  readonly resourceType: string;
  readonly resourceId: string | null;
  readonly patientPseudonym: string | null;
  readonly purpose: string;
  readonly outcome: string;
  readonly reason: string | null;
}

/**
 * A line of the accounting of disclosures and accesses (45 CFR 164.528, GDPR art. 15).
 * `via` says how the entry concerns the patient: the entry names the patient (`entry`), or it is
 * a search that returned the patient among others (`search-result`).
 */
export interface PatientAccessRow extends EntryRow {
  readonly via: 'entry' | 'search-result';
}

/** An entry with where it came from, for activity review and login monitoring. */
export interface ActivityRow extends EntryRow {
  readonly clientAddress: string | null;
  readonly sessionId: string | null;
}

/** The actions that login monitoring reports (written by the authentication work). */
export const LOGIN_ACTIONS = [
  'login',
  'logout',
  'login-failed',
  'lockout',
  'ip-blocked',
  'session-timeout',
] as const;
/** Plus every action starting with this prefix (`mfa-enrolled`, `mfa-failed`, ...). */
export const MFA_PREFIX = 'mfa-';

type Eb = ExpressionBuilder<CoreDb, 'audit_entries'>;

/** The window and practice filter as one condition. */
export function inWindow(eb: Eb, w: ReportWindow): Expression<SqlBool> {
  const parts: Expression<SqlBool>[] = [];
  if (w.since) {
    parts.push(eb('at', '>=', w.since));
  }
  if (w.until) {
    parts.push(eb('at', '<', w.until));
  }
  if (w.practiceId) {
    parts.push(eb('practice_id', '=', w.practiceId));
  }
  return eb.and(parts);
}

const ENTRY_COLUMNS = [
  'seq',
  'at',
  'actor_kind',
  'actor_id',
  'role',
  'on_behalf_of',
  'action',
  'resource_type',
  'resource_id',
  'patient_pseudonym',
  'purpose',
  'outcome',
  'reason',
] as const;

type EntryColumns = Pick<Selectable<CoreDb['audit_entries']>, (typeof ENTRY_COLUMNS)[number]>;

const entryRow = (r: EntryColumns): EntryRow => ({
  seq: r.seq,
  at: r.at,
  actorKind: r.actor_kind,
  actorId: r.actor_id,
  role: r.role,
  onBehalfOf: r.on_behalf_of,
  action: r.action,
  resourceType: r.resource_type,
  resourceId: r.resource_id,
  patientPseudonym: r.patient_pseudonym,
  purpose: r.purpose,
  outcome: r.outcome,
  reason: r.reason,
});

const activityRow = (r: EntryColumns & { client_address: string | null; session_id: string | null }) => ({
  ...entryRow(r),
  clientAddress: r.client_address,
  sessionId: r.session_id,
});

/**
 * `detail @> {"pseudonyms": [p]}`: the entry's detail lists the pseudonym (a search names every
 * patient it returned). Plain jsonb containment, which PostgreSQL 15 and PGlite both have and a
 * GIN index `USING gin (detail jsonb_path_ops)` can serve.
 */
export const namesInDetail = (pseudonym: string) =>
  sql<SqlBool>`detail @> ${JSON.stringify({ pseudonyms: [pseudonym] })}::jsonb`;

/**
 * Every entry about one patient, oldest first: entries naming the pseudonym (served by the index
 * `audit_entries (patient_pseudonym, seq)`), and entries whose detail lists it (searches).
 *
 * @example
 *   const pseudonym = await chart.patientPseudonym(ctx, patientId);
 *   const rows = await patientAccessReport(db, { pseudonym, since: new Date('2026-01-01') });
 */
export async function patientAccessReport(
  db: Kysely<CoreDb>,
  options: ReportWindow & { readonly pseudonym: string },
): Promise<PatientAccessRow[]> {
  const rows = await patientAccessQuery(db, options).execute();
  return rows.map((r) => ({ ...entryRow(r), via: r.via }));
}

/** The statement behind `patientAccessReport` (exported so a test can check its plan). */
export function patientAccessQuery(
  db: Kysely<CoreDb>,
  options: ReportWindow & { readonly pseudonym: string },
) {
  const { pseudonym } = options;
  const named = db
    .selectFrom('audit_entries')
    .select([...ENTRY_COLUMNS, sql<'entry' | 'search-result'>`'entry'`.as('via')])
    .where((eb) => eb.and([eb('patient_pseudonym', '=', pseudonym), inWindow(eb, options)]));
  const listed = db
    .selectFrom('audit_entries')
    .select([...ENTRY_COLUMNS, sql<'entry' | 'search-result'>`'search-result'`.as('via')])
    .where((eb) =>
      eb.and([
        namesInDetail(pseudonym),
        // An entry that names the patient and lists it too is reported once, as `entry`.
        eb.or([eb('patient_pseudonym', 'is', null), eb('patient_pseudonym', '!=', pseudonym)]),
        inWindow(eb, options),
      ]),
    );
  return named.unionAll(listed).orderBy('seq');
}

/**
 * Everything one actor did, oldest first (served by the index `audit_entries (actor_id, seq)`).
 * `actorId` is matched as stored: a user id, `system`, or a patient-portal id.
 */
export async function userActivityReport(
  db: Kysely<CoreDb>,
  options: ReportWindow & { readonly actorId: string },
): Promise<ActivityRow[]> {
  return (await userActivityQuery(db, options).execute()).map(activityRow);
}

/** The statement behind `userActivityReport` (exported so a test can check its plan). */
export function userActivityQuery(db: Kysely<CoreDb>, options: ReportWindow & { readonly actorId: string }) {
  return db
    .selectFrom('audit_entries')
    .select([...ENTRY_COLUMNS, 'client_address', 'session_id'])
    .where((eb) => eb.and([eb('actor_id', '=', options.actorId), inWindow(eb, options)]))
    .orderBy('seq');
}

/**
 * Logins, logouts, failed logins, lockouts, blocked addresses, session time-outs and `mfa-*`
 * events, oldest first (login monitoring, 45 CFR 164.308(a)(5)(ii)(C)).
 */
export async function loginReport(db: Kysely<CoreDb>, options: ReportWindow = {}): Promise<ActivityRow[]> {
  const rows = await db
    .selectFrom('audit_entries')
    .select([...ENTRY_COLUMNS, 'client_address', 'session_id'])
    .where((eb) =>
      eb.and([
        eb.or([eb('action', 'in', [...LOGIN_ACTIONS]), eb('action', 'like', `${MFA_PREFIX}%`)]),
        inWindow(eb, options),
      ]),
    )
    .orderBy('seq')
    .execute();
  return rows.map(activityRow);
}

/** Entries in a window, in pages of `pageSize` by ascending seq (for exports of large trails). */
export async function* entryPages(
  db: Kysely<CoreDb>,
  options: ReportWindow & { readonly throughSeq: string; readonly pageSize?: number },
) {
  const pageSize = options.pageSize ?? 1000;
  let after = '0';
  for (;;) {
    const page = await db
      .selectFrom('audit_entries')
      .selectAll()
      .where((eb) =>
        eb.and([eb('seq', '>', after), eb('seq', '<=', options.throughSeq), inWindow(eb, options)]),
      )
      .orderBy('seq')
      .limit(pageSize)
      .execute();
    if (page.length > 0) {
      yield page;
    }
    const last = page[page.length - 1];
    if (page.length < pageSize || !last) {
      return;
    }
    after = last.seq;
  }
}

/** How many entries a window holds and the highest seq among them ('0' when none). */
export async function windowExtent(
  db: Kysely<CoreDb>,
  options: ReportWindow,
): Promise<{ count: number; lastSeq: string }> {
  const r = await db
    .selectFrom('audit_entries')
    .select((eb) => [eb.fn.countAll<string>().as('n'), eb.fn.max('seq').as('last')])
    .where((eb) => inWindow(eb, options))
    .executeTakeFirst();
  return {
    count: Number(r?.n ?? 0),
    lastSeq: r?.last === null || r?.last === undefined ? '0' : String(r.last),
  };
}

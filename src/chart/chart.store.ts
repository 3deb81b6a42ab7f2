import { type Kysely, sql } from 'kysely';
import type { CoreDb } from '../db/schema.ts';
import type { ChartTables } from './tables.ts';

/** SQL for the gate. No decisions and no decryption here: rows in, rows out. */
export type ChartDb = CoreDb & ChartTables;
export type Tx = Kysely<ChartDb>;

/** Key id from a ciphertext header (bytes 1..16), computed in SQL to join its data key. */
const headerKeyId = (column: string) => sql.raw(`encode(substring(${column} from 2 for 16), 'hex')::uuid`);

export interface PatientHead {
  readonly id: string;
  readonly version: number;
  readonly active: boolean;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly body: Buffer;
  readonly keyId: string;
  readonly wrappedKey: Buffer;
  readonly link: Buffer;
  readonly onTeam: boolean;
}

/** The current identity version of one patient, its key, its link and the caller's care-team membership. */
export async function loadPatientHeads(
  tx: Tx,
  q: { practiceId: string; patientIds: readonly string[]; actorId: string; now: Date },
): Promise<PatientHead[]> {
  if (q.patientIds.length === 0) {
    return [];
  }
  const rows = await tx
    .selectFrom('patients as p')
    .innerJoin('patient_versions as pv', (j) => j.onRef('pv.patient_id', '=', 'p.id').onRef('pv.version', '=', 'p.current_version'))
    .innerJoin('patient_links as l', 'l.patient_id', 'p.id')
    .innerJoin('data_keys as dk', (j) => j.on(sql<boolean>`dk.id = ${headerKeyId('pv.body')}`))
    .select([
      'p.id',
      'p.current_version',
      'p.active',
      'p.created_at',
      'p.updated_at',
      'pv.body',
      'dk.id as key_id',
      'dk.wrapped',
      'l.link',
      sql<boolean>`EXISTS (SELECT 1 FROM care_team ct WHERE ct.patient_id = p.id AND ct.user_id = ${q.actorId}
        AND ct.starts_at <= ${q.now} AND (ct.ends_at IS NULL OR ct.ends_at > ${q.now}))`.as('on_team'),
    ])
    .where('p.practice_id', '=', q.practiceId)
    .where('p.id', 'in', q.patientIds)
    .execute();
  return rows.map((r) => ({
    id: r.id,
    version: r.current_version,
    active: r.active,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    body: r.body,
    keyId: r.key_id,
    wrappedKey: r.wrapped,
    link: r.link,
    onTeam: r.on_team,
  }));
}

export interface RecordRow {
  readonly id: string;
  readonly pseudonym: string;
  readonly kind: string;
  readonly sensitivity: string;
  readonly authorId: string;
  readonly status: string;
  readonly version: number;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly body: Buffer;
  readonly keyId: string;
  readonly wrappedKey: Buffer;
}

/**
 * Current versions of records (by patient pseudonym, optionally one kind, or by record id), or
 * every version of one record when `allVersions` is set.
 */
export async function loadRecords(
  tx: Tx,
  q: { practiceId: string; pseudonym?: string; kind?: string; recordId?: string; allVersions?: boolean },
): Promise<RecordRow[]> {
  let query = tx
    .selectFrom('records as r')
    .innerJoin('record_versions as rv', (j) =>
      q.allVersions ? j.onRef('rv.record_id', '=', 'r.id') : j.onRef('rv.record_id', '=', 'r.id').onRef('rv.version', '=', 'r.current_version'),
    )
    .innerJoin('data_keys as dk', (j) => j.on(sql<boolean>`dk.id = ${headerKeyId('rv.body')}`))
    .select([
      'r.id',
      'r.pseudonym',
      'r.kind',
      'r.sensitivity',
      'r.author_id',
      'r.status',
      'rv.version',
      'r.created_at',
      'rv.created_at as version_at',
      'rv.body',
      'dk.id as key_id',
      'dk.wrapped',
    ])
    .where('r.practice_id', '=', q.practiceId);
  if (q.pseudonym !== undefined) {
    query = query.where('r.pseudonym', '=', q.pseudonym);
  }
  if (q.kind !== undefined) {
    query = query.where('r.kind', '=', q.kind);
  }
  if (q.recordId !== undefined) {
    query = query.where('r.id', '=', q.recordId);
  }
  const rows = await query.orderBy('r.created_at').orderBy('r.id').orderBy('rv.version').execute();
  return rows.map((r) => ({
    id: r.id,
    pseudonym: r.pseudonym,
    kind: r.kind,
    sensitivity: r.sensitivity,
    authorId: r.author_id,
    status: r.status,
    version: r.version,
    createdAt: r.created_at,
    updatedAt: r.version_at,
    body: r.body,
    keyId: r.key_id,
    wrappedKey: r.wrapped,
  }));
}

/** The record's head (no body): for finding its patient before deciding. */
export async function loadRecordHead(tx: Tx, q: { practiceId: string; recordId: string }) {
  return tx
    .selectFrom('records')
    .select(['id', 'pseudonym', 'kind', 'sensitivity', 'author_id', 'status', 'current_version'])
    .where('practice_id', '=', q.practiceId)
    .where('id', '=', q.recordId)
    .executeTakeFirst();
}

export async function patientIdForPseudonymIndex(tx: Tx, practiceId: string, index: Buffer): Promise<string | undefined> {
  const row = await tx
    .selectFrom('patient_links')
    .select('patient_id')
    .where('practice_id', '=', practiceId)
    .where('pseudonym_index', '=', index)
    .executeTakeFirst();
  return row?.patient_id;
}

/** Patients matching every (kind, hash) pair. */
export async function searchIndex(
  tx: Tx,
  q: { practiceId: string; terms: readonly { kind: string; hash: Buffer }[]; limit: number },
): Promise<string[]> {
  const rows = await tx
    .selectFrom('patient_index')
    .select('patient_id')
    .where('practice_id', '=', q.practiceId)
    .where((eb) => eb.or(q.terms.map((t) => eb.and([eb('kind', '=', t.kind), eb('hash', '=', t.hash)]))))
    .groupBy('patient_id')
    .having(sql<number>`count(DISTINCT kind)`, '=', q.terms.length)
    .limit(q.limit)
    .execute();
  return rows.map((r) => r.patient_id);
}

export async function patientVersions(tx: Tx, patientId: string) {
  return tx
    .selectFrom('patient_versions as pv')
    .innerJoin('data_keys as dk', (j) => j.on(sql<boolean>`dk.id = ${headerKeyId('pv.body')}`))
    .select(['pv.version', 'pv.body', 'pv.created_at', 'dk.id as key_id', 'dk.wrapped'])
    .where('pv.patient_id', '=', patientId)
    .orderBy('pv.version')
    .execute();
}

export async function replaceIndex(
  tx: Tx,
  q: { practiceId: string; patientId: string; rows: readonly { kind: string; hash: Buffer }[] },
): Promise<void> {
  await tx.deleteFrom('patient_index').where('patient_id', '=', q.patientId).execute();
  if (q.rows.length > 0) {
    await tx
      .insertInto('patient_index')
      .values(q.rows.map((r) => ({ practice_id: q.practiceId, patient_id: q.patientId, kind: r.kind, hash: r.hash })))
      .execute();
  }
}

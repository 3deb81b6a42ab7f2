import { type Kysely, type RawBuilder, sql } from 'kysely';
import type { AuditRow } from '../audit/append.ts';
import type { CoreDb } from '../db/schema.ts';
import type { ChartTables } from './tables.ts';

/** SQL for the gate. No decisions and no decryption here: rows in, rows out. */
export type ChartDb = CoreDb & ChartTables;
export type Tx = Kysely<ChartDb>;

/** The caller's current care-team membership of patient `col` (SQL). */
export const onTeamSql = (col: string, actorId: string, now: Date) =>
  sql<boolean>`EXISTS (SELECT 1 FROM care_team ct WHERE ct.patient_id = ${sql.raw(col)} AND ct.user_id = ${actorId}
        AND ct.starts_at <= ${now} AND (ct.ends_at IS NULL OR ct.ends_at > ${now}))`;

/** The caller's active break-the-glass grant for patient `col`, if any (SQL). */
const grantSql = (col: string, actorId: string, now: Date) =>
  sql<
    string | null
  >`(SELECT g.id FROM break_glass_grants g WHERE g.patient_id = ${sql.raw(col)} AND g.user_id = ${actorId}
        AND g.starts_at <= ${now} AND g.expires_at > ${now} AND g.ended_at IS NULL ORDER BY g.expires_at DESC LIMIT 1)`;

/** The caller shares the patient's family name (blind indexes compared; SQL). */
const namesakeSql = (col: string, actorId: string) =>
  sql<boolean>`EXISTS (SELECT 1 FROM patient_index pi WHERE pi.patient_id = ${sql.raw(col)} AND pi.kind = 'family'
        AND pi.hash = (SELECT u.family_index FROM users u WHERE u.id::text = ${actorId}))`;

/** Facts about a patient for the policy (no health data): the sealed link, the caller's relationship, consent. */
export interface PatientFactsRow {
  readonly id: string;
  readonly link: Buffer;
  readonly on_team: boolean;
  readonly restricted: boolean;
  readonly grant_id: string | null;
  readonly consent: Buffer | null;
  readonly consent_version: number | null;
  /** The caller's family name equals the patient's (for the anomaly report, not the decision). */
  readonly namesake: boolean;
  /** The patient this one was merged into (loadPatientFacts only). */
  readonly merged_into?: string | null;
}

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
    .innerJoin('patient_versions as pv', (j) =>
      j.onRef('pv.patient_id', '=', 'p.id').onRef('pv.version', '=', 'p.current_version'),
    )
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
      onTeamSql('p.id', q.actorId, q.now).as('on_team'),
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
      q.allVersions
        ? j.onRef('rv.record_id', '=', 'r.id')
        : j.onRef('rv.record_id', '=', 'r.id').onRef('rv.version', '=', 'r.current_version'),
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
export async function loadRecordHead(tx: Tx, q: { practiceId: string; recordId: string; actorId: string }) {
  return tx
    .selectFrom('records as r')
    .select([
      'r.id',
      'r.pseudonym',
      'r.kind',
      'r.sensitivity',
      'r.author_id',
      'r.status',
      'r.current_version',
      'r.categories',
      'r.released_at',
      'r.signed_at',
      'r.signed_by',
      'r.amends',
      'r.amended_by',
      sql<boolean>`EXISTS (SELECT 1 FROM record_shares rs WHERE rs.record_id = r.id AND rs.user_id = ${q.actorId})`.as(
        'shared',
      ),
    ])
    .where('r.practice_id', '=', q.practiceId)
    .where('r.id', '=', q.recordId)
    .executeTakeFirst();
}

export async function patientIdForPseudonymIndex(
  tx: Tx,
  practiceId: string,
  index: Buffer,
): Promise<string | undefined> {
  const row = await tx
    .selectFrom('patient_links')
    .select('patient_id')
    .where('practice_id', '=', practiceId)
    .where('pseudonym_index', '=', index)
    .executeTakeFirst();
  return row?.patient_id;
}

/**
 * Patients matching every (kind, hash) pair, with their encrypted links and the caller's
 * care-team membership: the facts a search decides on, without any health data.
 */
export async function searchIndex(
  tx: Tx,
  q: {
    practiceId: string;
    terms: readonly { kind: string; hash: Buffer }[];
    limit: number;
    actorId: string;
    now: Date;
    includeInactive?: boolean;
  },
): Promise<PatientFactsRow[]> {
  const matches = tx
    .selectFrom('patient_index')
    .select('patient_id')
    .where('practice_id', '=', q.practiceId)
    .where((eb) => eb.or(q.terms.map((t) => eb.and([eb('kind', '=', t.kind), eb('hash', '=', t.hash)]))))
    .groupBy('patient_id')
    .having(sql<number>`count(DISTINCT kind)`, '=', q.terms.length)
    .limit(q.limit);
  return tx
    .selectFrom('patient_links as l')
    .innerJoin('patients as p', 'p.id', 'l.patient_id')
    .leftJoin('patient_consents as c', 'c.patient_id', 'l.patient_id')
    .select([
      'l.patient_id as id',
      'l.link',
      'p.restricted',
      onTeamSql('l.patient_id', q.actorId, q.now).as('on_team'),
      grantSql('l.patient_id', q.actorId, q.now).as('grant_id'),
      'c.body as consent',
      'c.version as consent_version',
      sql<boolean>`false`.as('namesake'),
    ])
    .where('l.patient_id', 'in', matches)
    .$if(!q.includeInactive, (b) => b.where('p.active', '=', true))
    .execute();
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
      .values(
        q.rows.map((r) => ({
          practice_id: q.practiceId,
          patient_id: q.patientId,
          kind: r.kind,
          hash: r.hash,
        })),
      )
      .execute();
  }
}

// --- audited reads: the audit insert and the read are one statement, hence one transaction ---

/**
 * `WITH audit AS (INSERT INTO audit_entries ...)`: prefixed to a read, PostgreSQL runs the insert
 * and the select as one statement, so the entry commits with the read or neither happens, in a
 * single round trip (no BEGIN/COMMIT). Data-modifying CTEs run even when the select returns no
 * rows. Used for reads only; writes use an explicit transaction.
 */
function auditCte(row: AuditRow): RawBuilder<unknown> {
  const cols = Object.keys(row) as (keyof AuditRow)[];
  return sql`WITH audit AS (INSERT INTO audit_entries (${sql.join(cols.map((c) => sql.ref(c)))})
    VALUES (${sql.join(cols.map((c) => (c === 'detail' && row.detail !== null ? sql`${row.detail}::jsonb` : sql`${row[c]}`)))}) RETURNING seq)`;
}

/** One row of an audited read: an identity version, a record version, or a wrapped data key (`body`). */
export interface AuditedRow {
  readonly part: 'identity' | 'record' | 'key';
  readonly id: string;
  readonly version: number;
  readonly kind: string | null;
  readonly sensitivity: string | null;
  readonly author_id: string | null;
  readonly status: string | null;
  readonly active: boolean | null;
  readonly created_at: Date;
  readonly updated_at: Date;
  readonly body: Buffer;
  readonly categories: string[] | null;
  readonly released: boolean | null;
  /** The record is shared with the caller (psychotherapy notes). */
  readonly shared: boolean | null;
  readonly signed_at: Date | null;
  readonly signed_by: string | null;
  readonly amends: string | null;
  readonly amended_by: string | null;
  /** Identity rows: the patient this one was merged into. */
  readonly merged_into: string | null;
}

const identitySelect = (q: {
  practiceId: string;
  patientIds: readonly string[];
  allVersions: boolean;
}) => sql`
  SELECT 'identity' AS part, p.id, pv.version, NULL AS kind, NULL AS sensitivity, NULL AS author_id, NULL AS status,
         p.active, p.created_at, pv.created_at AS updated_at, pv.body,
         NULL::text[] AS categories, NULL::boolean AS released, NULL::boolean AS shared,
         NULL::timestamptz AS signed_at, NULL::text AS signed_by, NULL::uuid AS amends, NULL::uuid AS amended_by,
         p.merged_into
    FROM patients p
    JOIN patient_versions pv ON pv.patient_id = p.id ${q.allVersions ? sql`` : sql`AND pv.version = p.current_version`}
   WHERE p.practice_id = ${q.practiceId} AND p.id IN (${sql.join(q.patientIds)})`;

const recordSelect = (q: {
  practiceId: string;
  actorId: string;
  pseudonym?: string;
  recordId?: string;
  kind?: string;
  allVersions: boolean;
  page?: RecordPage;
}) => (q.page ? sql`(${recordRows(q)} ${pageClause(q.page)})` : recordRows(q));

/**
 * A page of a record list: the rows after the cursor (created_at, id) of the previous page's last
 * visible record, oldest first. No LIMIT here: which rows the caller may see is decided per row
 * afterwards (before any decryption), and a page must be cut among visible records only, or its
 * cursor would point at (and count) records the caller may not see.
 */
export interface RecordPage {
  readonly after?: { readonly createdAt: Date; readonly id: string };
}

const pageClause = (page: RecordPage) => sql`
     ${page.after ? sql`AND (r.created_at, r.id) > (${page.after.createdAt}, ${page.after.id})` : sql``}
   ORDER BY r.created_at, r.id`;

const recordRows = (q: {
  practiceId: string;
  actorId: string;
  pseudonym?: string;
  recordId?: string;
  kind?: string;
  allVersions: boolean;
}) => sql`
  SELECT 'record' AS part, r.id, rv.version, r.kind, r.sensitivity, r.author_id, r.status,
         NULL AS active, r.created_at, rv.created_at AS updated_at, rv.body,
         r.categories, r.released_at IS NOT NULL AS released,
         (r.sensitivity = 'psychotherapy' AND EXISTS (SELECT 1 FROM record_shares rs WHERE rs.record_id = r.id AND rs.user_id = ${q.actorId})) AS shared,
         r.signed_at, r.signed_by, r.amends, r.amended_by, NULL::uuid AS merged_into
    FROM records r
    JOIN record_versions rv ON rv.record_id = r.id ${q.allVersions ? sql`` : sql`AND rv.version = r.current_version`}
   WHERE r.practice_id = ${q.practiceId}
     ${q.pseudonym !== undefined ? sql`AND r.pseudonym = ${q.pseudonym}` : sql``}
     ${q.recordId !== undefined ? sql`AND r.id = ${q.recordId}` : sql``}
     ${q.kind !== undefined ? sql`AND r.kind = ${q.kind}` : sql``}`;

const keySelect = (q: { practiceId: string; keyIds: readonly string[] }) => sql`
  SELECT 'key' AS part, dk.id, 0 AS version, NULL AS kind, NULL AS sensitivity, NULL AS author_id, NULL AS status,
         NULL AS active, dk.created_at, dk.created_at AS updated_at, dk.wrapped AS body,
         NULL::text[] AS categories, NULL::boolean AS released, NULL::boolean AS shared,
         NULL::timestamptz AS signed_at, NULL::text AS signed_by, NULL::uuid AS amends, NULL::uuid AS amended_by,
         NULL::uuid AS merged_into
    FROM data_keys dk
   WHERE dk.practice_id = ${q.practiceId} AND dk.id IN (${sql.join(q.keyIds)})`;

/** What an audited read fetches: identity versions, record versions, and the data keys they need. */
export interface AuditedQuery {
  readonly practiceId: string;
  /** The caller, for "shared with me" on psychotherapy notes. */
  readonly actorId: string;
  readonly identity?: { readonly patientIds: readonly string[]; readonly allVersions?: boolean };
  readonly records?: {
    readonly pseudonym?: string;
    readonly recordId?: string;
    readonly kind?: string;
    readonly allVersions?: boolean;
    readonly page?: RecordPage;
  };
  readonly keyIds: readonly string[];
}

const PART_ORDER = { identity: 0, record: 1, key: 2 } as const;

/** Rows in order: identity versions, then records (oldest first, versions ascending), then keys. */
export async function auditedRead(db: Tx, audit: AuditRow, q: AuditedQuery): Promise<AuditedRow[]> {
  const parts: RawBuilder<unknown>[] = [];
  if (q.identity) {
    if (q.identity.patientIds.length > 0) {
      parts.push(
        identitySelect({
          practiceId: q.practiceId,
          patientIds: q.identity.patientIds,
          allVersions: q.identity.allVersions ?? false,
        }),
      );
    }
  }
  if (q.records) {
    parts.push(
      recordSelect({
        practiceId: q.practiceId,
        actorId: q.actorId,
        ...q.records,
        allVersions: q.records.allVersions ?? false,
      }),
    );
  }
  if (q.keyIds.length > 0) {
    parts.push(keySelect({ practiceId: q.practiceId, keyIds: q.keyIds }));
  }
  // With nothing to read (a search without candidates) the statement still writes the entry.
  const body = parts.length > 0 ? sql.join(parts, sql` UNION ALL `) : sql`SELECT 1 WHERE false`;
  const r = await sql<AuditedRow>`${auditCte(audit)} ${body}`.execute(db);
  return r.rows.sort(
    (a, b) =>
      PART_ORDER[a.part] - PART_ORDER[b.part] ||
      a.created_at.getTime() - b.created_at.getTime() ||
      (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) ||
      a.version - b.version,
  );
}

/** Facts for deciding about one patient (no health data): its link and the caller's relationship. */
export async function loadPatientFacts(
  tx: Tx,
  q: { practiceId: string; patientId: string; actorId: string; now: Date; lock?: boolean },
): Promise<PatientFactsRow | undefined> {
  return (
    tx
      .selectFrom('patients as p')
      .innerJoin('patient_links as l', 'l.patient_id', 'p.id')
      .leftJoin('patient_consents as c', 'c.patient_id', 'p.id')
      .select([
        'p.id',
        'l.link',
        'p.restricted',
        'p.merged_into',
        onTeamSql('p.id', q.actorId, q.now).as('on_team'),
        grantSql('p.id', q.actorId, q.now).as('grant_id'),
        'c.body as consent',
        'c.version as consent_version',
        namesakeSql('p.id', q.actorId).as('namesake'),
      ])
      .where('p.practice_id', '=', q.practiceId)
      .where('p.id', '=', q.patientId)
      // Inside a writing transaction the patient row is share-locked to the end: a merge (which
      // locks it for update) waits for this write, or this write waits and then sees the merge.
      .$if(q.lock === true, (b) => b.forShare('p'))
      .executeTakeFirst()
  );
}

/** The interim policy's facts (link and care-team membership only): the benchmark's baseline. */
export async function loadInterimFacts(
  tx: Tx,
  q: { practiceId: string; patientId: string; actorId: string; now: Date },
): Promise<PatientFactsRow | undefined> {
  return tx
    .selectFrom('patients as p')
    .innerJoin('patient_links as l', 'l.patient_id', 'p.id')
    .select([
      'p.id',
      'l.link',
      sql<boolean>`false`.as('restricted'),
      onTeamSql('p.id', q.actorId, q.now).as('on_team'),
      sql<string | null>`NULL::text`.as('grant_id'),
      sql<Buffer | null>`NULL::bytea`.as('consent'),
      sql<number | null>`NULL::int`.as('consent_version'),
      sql<boolean>`false`.as('namesake'),
    ])
    .where('p.practice_id', '=', q.practiceId)
    .where('p.id', '=', q.patientId)
    .executeTakeFirst();
}

// --- patient merges (merge.service.ts) ---

export interface PatientState {
  readonly id: string;
  readonly active: boolean;
  readonly merged_into: string | null;
}

/**
 * Whether patients are active and whom they were merged into; with `lock`, their rows stay
 * locked to the end of the transaction (in id order, so two merges of the same pair cannot
 * deadlock), so that a concurrent merge of either waits and then sees this one.
 */
export async function patientStates(
  tx: Tx,
  q: { practiceId: string; patientIds: readonly string[]; lock: boolean },
): Promise<PatientState[]> {
  const query = tx
    .selectFrom('patients')
    .select(['id', 'active', 'merged_into'])
    .where('practice_id', '=', q.practiceId)
    .where('id', 'in', q.patientIds)
    .orderBy('id');
  return q.lock ? query.forUpdate().execute() : query.execute();
}

/** Locks the head rows of records (a concurrent version of one of them waits for the merge). */
export async function lockRecords(
  tx: Tx,
  q: { practiceId: string; pseudonym: string; recordIds?: readonly string[] },
): Promise<string[]> {
  if (q.recordIds?.length === 0) {
    return [];
  }
  let query = tx
    .selectFrom('records')
    .select('id')
    .where('practice_id', '=', q.practiceId)
    .where('pseudonym', '=', q.pseudonym);
  if (q.recordIds) {
    query = query.where('id', 'in', q.recordIds);
  }
  return (await query.orderBy('id').forUpdate().execute()).map((r) => r.id);
}

/** Records that amend any of `ids` (one step of the amendment chain), under one pseudonym. */
export async function amendmentsOf(
  tx: Tx,
  q: { practiceId: string; pseudonym: string; ids: readonly string[] },
): Promise<string[]> {
  if (q.ids.length === 0) {
    return [];
  }
  const rows = await tx
    .selectFrom('records')
    .select('id')
    .where('practice_id', '=', q.practiceId)
    .where('pseudonym', '=', q.pseudonym)
    .where('amends', 'in', q.ids)
    .execute();
  return rows.map((r) => r.id);
}

const BATCH = 500;

/** Replaces the sealed bodies of record versions (re-sealed under another key), in batches. */
export async function replaceVersionBodies(
  tx: Tx,
  practiceId: string,
  rows: readonly { recordId: string; version: number; body: Buffer }[],
): Promise<number> {
  let n = 0;
  for (let i = 0; i < rows.length; i += BATCH) {
    const values = rows
      .slice(i, i + BATCH)
      .map((r) => sql`(${r.recordId}::uuid, ${r.version}::int, ${r.body}::bytea)`);
    const r = await sql`UPDATE record_versions AS rv SET body = v.body
      FROM (VALUES ${sql.join(values)}) AS v (record_id, version, body)
      WHERE rv.practice_id = ${practiceId} AND rv.record_id = v.record_id AND rv.version = v.version`.execute(
      tx,
    );
    n += Number(r.numAffectedRows ?? 0n);
  }
  return n;
}

/** The tables of the current schema with a `pseudonym` column (clinical rows of a patient). */
export async function pseudonymTables(tx: Tx): Promise<string[]> {
  const r = await sql<{ t: string }>`SELECT DISTINCT c.table_name AS t FROM information_schema.columns c
    JOIN information_schema.tables tb ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name
    WHERE c.table_schema = current_schema() AND c.column_name = 'pseudonym' AND tb.table_type = 'BASE TABLE'
    ORDER BY 1`.execute(tx);
  return r.rows.map((x) => x.t);
}

/**
 * Rows of a pseudonym table under one pseudonym (all, some ids, or those whose `parent.column`
 * names one of `parent.ids`), locked: their id, the other columns asked for, and sealed columns.
 */
export async function sealedRows(
  tx: Tx,
  q: {
    practiceId: string;
    table: string;
    columns: readonly string[];
    pseudonym: string;
    ids?: readonly string[];
    parent?: { column: string; ids: readonly string[] };
  },
): Promise<Record<string, unknown>[]> {
  if (q.ids?.length === 0 || q.parent?.ids.length === 0) {
    return [];
  }
  const r = await sql<Record<string, unknown>>`SELECT id, ${sql.join(q.columns.map((c) => sql.ref(c)))}
    FROM ${sql.table(q.table)}
    WHERE practice_id = ${q.practiceId} AND pseudonym = ${q.pseudonym}
      ${q.ids ? sql`AND id IN (${sql.join(q.ids)})` : sql``}
      ${q.parent ? sql`AND ${sql.ref(q.parent.column)} IN (${sql.join(q.parent.ids)})` : sql``}
    ORDER BY id FOR UPDATE`.execute(tx);
  return r.rows;
}

/** Moves one row of a pseudonym table to another pseudonym with its re-sealed columns; false if it was not there. */
export async function moveSealedRow(
  tx: Tx,
  q: {
    practiceId: string;
    table: string;
    id: string;
    from: string;
    to: string;
    sealed: Readonly<Record<string, Buffer | null>>;
  },
): Promise<boolean> {
  const sets = [
    sql`pseudonym = ${q.to}`,
    ...Object.entries(q.sealed).map(([c, v]) => sql`${sql.ref(c)} = ${v}`),
  ];
  const r = await sql`UPDATE ${sql.table(q.table)} SET ${sql.join(sets)}
    WHERE practice_id = ${q.practiceId} AND id = ${q.id} AND pseudonym = ${q.from}`.execute(tx);
  return Number(r.numAffectedRows ?? 0n) === 1;
}

/** Moves records to another pseudonym (their versions re-sealed first); the number moved. */
export async function moveRecordHeads(
  tx: Tx,
  q: { practiceId: string; ids: readonly string[]; from: string; to: string },
): Promise<number> {
  if (q.ids.length === 0) {
    return 0;
  }
  const r = await tx
    .updateTable('records')
    .set({ pseudonym: q.to })
    .where('practice_id', '=', q.practiceId)
    .where('pseudonym', '=', q.from)
    .where('id', 'in', q.ids)
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}

/** Rows still carrying a pseudonym in a table (after a merge moved them all: none). */
export async function countPseudonymRows(
  tx: Tx,
  q: { practiceId: string; table: string; pseudonym: string },
): Promise<number> {
  const r = await sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql.table(q.table)}
    WHERE practice_id = ${q.practiceId} AND pseudonym = ${q.pseudonym}`.execute(tx);
  return r.rows[0]?.n ?? 0;
}

/** Current and future care-team memberships of a patient held by active accounts. */
export async function openMemberships(
  tx: Tx,
  q: { practiceId: string; patientId: string; now: Date },
): Promise<{ user_id: string; starts_at: Date; ends_at: Date | null }[]> {
  return tx
    .selectFrom('care_team as ct')
    .innerJoin('users as u', (j) => j.on(sql<boolean>`u.id::text = ct.user_id`))
    .select(['ct.user_id', 'ct.starts_at', 'ct.ends_at'])
    .where('ct.practice_id', '=', q.practiceId)
    .where('ct.patient_id', '=', q.patientId)
    .where('u.status', '=', 'active')
    .where((eb) => eb.or([eb('ct.ends_at', 'is', null), eb('ct.ends_at', '>', q.now)]))
    .orderBy('ct.starts_at')
    .execute();
}

import { sql } from 'kysely';
import type { AuditedRow, Tx } from './chart.store.ts';

/**
 * SQL of the bulk export (src/chart/export.service.ts). No decisions and no decryption: the
 * patients to export, then page by page their current identity, their current records (never a
 * psychotherapy note: those rows are not even fetched) and the wrapped data keys they need.
 */

/** A row of an export page: an audited-read row, records with their pseudonym. */
export type ExportRow = AuditedRow & { readonly pseudonym: string | null };

/** Ids of the practice's active patients, in id order, and how many of them are restricted. */
export async function activePatients(
  tx: Tx,
  practiceId: string,
): Promise<{ ids: string[]; restricted: number }> {
  const rows = await tx
    .selectFrom('patients')
    .select(['id', 'restricted'])
    .where('practice_id', '=', practiceId)
    .where('active', '=', true)
    .orderBy('id')
    .execute();
  return { ids: rows.map((r) => r.id), restricted: rows.filter((r) => r.restricted).length };
}

/** The sealed pseudonym links of some patients. */
export async function links(
  db: Tx,
  practiceId: string,
  patientIds: readonly string[],
): Promise<{ patient_id: string; link: Buffer }[]> {
  if (patientIds.length === 0) {
    return [];
  }
  return db
    .selectFrom('patient_links')
    .select(['patient_id', 'link'])
    .where('practice_id', '=', practiceId)
    .where('patient_id', 'in', patientIds)
    .execute();
}

/**
 * One page: current identity versions of the (still active) patients, current versions of the
 * records under their pseudonyms except psychotherapy notes, and the wrapped data keys, as the
 * rows of an audited read (so the gate's decryption helpers apply). One statement, so a page is
 * one consistent snapshot.
 */
export async function exportPage(
  db: Tx,
  q: {
    practiceId: string;
    patientIds: readonly string[];
    pseudonyms: readonly string[];
    keyIds: readonly string[];
  },
): Promise<ExportRow[]> {
  if (q.patientIds.length === 0 || q.pseudonyms.length === 0 || q.keyIds.length === 0) {
    return [];
  }
  const r = await sql<ExportRow>`
    SELECT 'identity' AS part, p.id, pv.version, NULL AS kind, NULL AS sensitivity, NULL AS author_id,
           NULL AS status, p.active, p.created_at, pv.created_at AS updated_at, pv.body,
           NULL::text[] AS categories, NULL::boolean AS released, NULL::boolean AS shared,
           NULL::timestamptz AS signed_at, NULL::text AS signed_by, NULL::uuid AS amends,
           NULL::uuid AS amended_by, NULL AS pseudonym
      FROM patients p
      JOIN patient_versions pv ON pv.patient_id = p.id AND pv.version = p.current_version
     WHERE p.practice_id = ${q.practiceId} AND p.active AND p.id IN (${sql.join(q.patientIds)})
    UNION ALL
    SELECT 'record' AS part, r.id, rv.version, r.kind, r.sensitivity, r.author_id, r.status,
           NULL AS active, r.created_at, rv.created_at AS updated_at, rv.body,
           r.categories, r.released_at IS NOT NULL AS released, false AS shared,
           r.signed_at, r.signed_by, r.amends, r.amended_by, r.pseudonym
      FROM records r
      JOIN record_versions rv ON rv.record_id = r.id AND rv.version = r.current_version
     WHERE r.practice_id = ${q.practiceId} AND r.pseudonym IN (${sql.join(q.pseudonyms)})
       AND r.sensitivity <> 'psychotherapy'
    UNION ALL
    SELECT 'key' AS part, dk.id, 0 AS version, NULL AS kind, NULL AS sensitivity, NULL AS author_id,
           NULL AS status, NULL AS active, dk.created_at, dk.created_at AS updated_at, dk.wrapped AS body,
           NULL::text[] AS categories, NULL::boolean AS released, NULL::boolean AS shared,
           NULL::timestamptz AS signed_at, NULL::text AS signed_by, NULL::uuid AS amends,
           NULL::uuid AS amended_by, NULL AS pseudonym
      FROM data_keys dk
     WHERE dk.practice_id = ${q.practiceId} AND dk.id IN (${sql.join(q.keyIds)})`.execute(db);
  return r.rows;
}

/** Marks an export complete (its archive's hash and size, what it held) or failed. */
export async function finishExport(
  db: Tx,
  q: {
    id: string;
    status: 'finished' | 'failed';
    at: Date;
    patients: number;
    records: number;
    bytes?: number;
    sha256?: string;
  },
): Promise<void> {
  await db
    .updateTable('exports')
    .set({
      status: q.status,
      finished_at: q.at,
      exported_patients: q.patients,
      exported_records: q.records,
      archive_bytes: q.bytes ?? null,
      sha256: q.sha256 ?? null,
    })
    .where('id', '=', q.id)
    .where('status', '=', 'started')
    .execute();
}

/** The practice's exports, newest first, with the requester's username. */
export async function listExports(db: Tx, practiceId: string) {
  return db
    .selectFrom('exports as e')
    .leftJoin('users as u', 'u.id', 'e.requested_by')
    .select([
      'e.id',
      'e.requested_by',
      'u.username',
      'e.purpose_code',
      'e.purpose',
      'e.status',
      'e.patient_count',
      'e.exported_patients',
      'e.exported_records',
      'e.archive_bytes',
      'e.sha256',
      'e.created_at',
      'e.finished_at',
    ])
    .where('e.practice_id', '=', practiceId)
    .orderBy('e.created_at', 'desc')
    .orderBy('e.id')
    .execute();
}

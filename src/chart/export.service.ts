import { createHash, randomUUID } from 'node:crypto';
import { pipeline, Readable, Transform, type TransformCallback } from 'node:stream';
import { z } from 'zod';
import type { AccessContext } from '../access/context.ts';
import { GRANTS, isRole } from '../access/grants.ts';
import { append } from '../audit/append.ts';
import type { Binding } from '../crypto/envelope.ts';
import { CustosError, validationError } from '../errors.ts';
import { toFhirBundle } from '../fhir/export.ts';
import { checkPassphrase, type ScryptParams, sealArchive } from '../files/export-archive.ts';
import type { Tx } from './chart.store.ts';
import { CallKeys, type Link } from './cipher.ts';
import * as store from './export.store.ts';
import {
  asCore,
  Denied,
  failureReason,
  type GateCore,
  openIdentityRow,
  openRecordRow,
  recordFactsOf,
  type Target,
  wrappedKeys,
} from './gate-core.ts';
import { type ClinicalRecord, RecordKinds } from './model.ts';

/**
 * The bulk export (issue 6 item 9): every active patient of the practice as FHIR R4 NDJSON (one
 * resource per line: the Patient, then its records as `toFhirBundle` maps them), gzip-compressed
 * and encrypted under a passphrase (src/files/export-archive.ts). There is no "export all" button:
 *
 * - only a person whose role has the `bulkExport` grant (the privacy officer), checked by the
 *   policy and again against the account itself, never the system actor;
 * - after a re-authentication within the last 5 minutes (step-up: the API's
 *   `POST /api/v1/auth/reauth`, or the fresh password + TOTP login of `custos export`);
 * - with a stated purpose: a code from {@link PURPOSE_CODES}, which the audit entry carries, and a
 *   text of 10 to 500 characters, which may well name a patient or a lawsuit and is therefore
 *   sealed in the export registry (table `exports`) and never written to the audit trail;
 * - never a psychotherapy note (45 CFR 164.508(a)(2)): such rows are not even fetched, the policy
 *   refuses each one again, and the FHIR mapping drops them a third time.
 *
 * Audit: ONE entry (`export`, resource `export` with the export id, detail: patient count and
 * purpose code), committed together with the registry row BEFORE any record is read. The archive
 * is then produced page by page (50 patients a page, each page one statement), so a practice of
 * any size streams in bounded memory and a slow download never holds a transaction open (the
 * embedded database has a single connection). The alternative, reading everything in the
 * transaction of the entry, would either buffer the whole archive before the first byte (memory,
 * timeouts) or hold a transaction for the whole download; "entry first, then data" keeps the
 * invariant that no plaintext exists without a committed entry naming the export and its count.
 * When the archive is complete the registry row gets its SHA-256, size and counts (a patient
 * deactivated meanwhile is left out and shows in the difference); an export that fails or is
 * abandoned midway gets a second entry, outcome `error`, and its row is marked `failed`.
 */

/** Why a practice exports everything. `research` is absent on purpose: this archive is identified. */
export const PURPOSE_CODES = ['migration', 'legal', 'backup-verification', 'regulatory'] as const;
export type PurposeCode = (typeof PURPOSE_CODES)[number];

/** A bulk export needs a re-authentication this recent (the same window as signing a note). */
export const EXPORT_REAUTH_MS = 5 * 60_000;

/** Patients per page: bounded memory, and a few statements per second of download. */
const PAGE = 50;

const ExportInput = z
  .object({
    purposeCode: z.enum(PURPOSE_CODES, `must be one of ${PURPOSE_CODES.join(', ')}`),
    purpose: z
      .string('must be a string')
      .trim()
      .min(10, 'must state the purpose in at least 10 characters')
      .max(500, 'must be at most 500 characters'),
    passphrase: z.string('must be a string'),
  })
  .strict();

export type ExportInput = z.input<typeof ExportInput>;

/** Where the stated purpose is sealed (under the key-encryption key). */
const purposeAt = (id: string): Binding => ({ table: 'exports', column: 'purpose', row: id, version: 0 });

export interface ExportSummary {
  readonly id: string;
  readonly status: 'finished' | 'failed';
  readonly patients: number;
  readonly records: number;
  readonly bytes: number;
  readonly sha256: string | null;
}

/** A started export: its id and count (audited), the archive to stream, and how it ended. */
export interface BulkExport {
  readonly id: string;
  readonly patientCount: number;
  readonly createdAt: Date;
  /** The encrypted archive. It ends only after the registry row is marked finished. */
  readonly archive: Readable;
  /** Resolves (never rejects) once the archive is complete, failed or abandoned. */
  readonly finished: Promise<ExportSummary>;
}

export interface ExportRecord {
  readonly id: string;
  readonly requestedBy: string;
  readonly requestedByUsername: string | null;
  readonly purposeCode: PurposeCode;
  readonly purpose: string;
  readonly status: 'started' | 'finished' | 'failed';
  readonly patientCount: number;
  readonly exportedPatients: number | null;
  readonly exportedRecords: number | null;
  readonly archiveBytes: number | null;
  readonly sha256: string | null;
  readonly createdAt: Date;
  readonly finishedAt: Date | null;
}

function parseInput(input: unknown): z.infer<typeof ExportInput> {
  const r = ExportInput.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    // An unknown member is named when it is a plain identifier (never echo arbitrary input).
    const extra = issue?.code === 'unrecognized_keys' ? issue.keys[0] : undefined;
    const field =
      extra !== undefined
        ? /^[A-Za-z][A-Za-z0-9_]{0,40}$/.test(extra)
          ? extra
          : 'export'
        : (issue?.path ?? []).map(String).join('.');
    throw validationError(
      field || 'export',
      extra !== undefined ? 'is not an option of an export' : (issue?.message ?? 'is invalid'),
    );
  }
  checkPassphrase(r.data.passphrase);
  return r.data;
}

/**
 * The account behind the context, not only the role it claims: active, and holding a role with
 * the `bulkExport` grant (a role withdrawn a second ago no longer exports).
 */
async function assertExporter(tx: Tx, ctx: AccessContext): Promise<void> {
  const u = await tx
    .selectFrom('users')
    .select(['roles', 'status'])
    .where('id', '=', ctx.actor.id)
    .where('practice_id', '=', ctx.practiceId)
    .executeTakeFirst();
  if (u?.status !== 'active' || !u.roles.some((r) => isRole(r) && GRANTS[r].bulkExport)) {
    throw new Denied('no-grant');
  }
}

function assertRecentReauth(g: GateCore, ctx: AccessContext): void {
  const at = ctx.reauthenticatedAt;
  if (!at || g.clock().getTime() - at.getTime() > EXPORT_REAUTH_MS) {
    throw new CustosError(
      'CUSTOS_ERR_STEP_UP',
      'a bulk export needs a re-authentication within the last 5 minutes: POST /api/v1/auth/reauth',
    );
  }
}

const KIND_ORDER = new Map(RecordKinds.map((k, i) => [k, i]));
const byKind = (a: ClinicalRecord, b: ClinicalRecord) =>
  (KIND_ORDER.get(a.kind) ?? 99) - (KIND_ORDER.get(b.kind) ?? 99) ||
  a.createdAt.getTime() - b.createdAt.getTime() ||
  (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * Starts a bulk export: decides, checks the step-up and the purpose, registers it and commits its
 * one audit entry, then returns the archive as a stream that reads the practice page by page.
 */
export async function exportAll(
  g: GateCore,
  ctx: AccessContext,
  input: unknown,
  options: { kdf?: ScryptParams } = {},
): Promise<BulkExport> {
  const id = randomUUID();
  const target: Target = { action: 'export', resourceType: 'export', resourceId: id, purpose: 'export' };
  const started = await g.call(ctx, target, async (tx, t) => {
    g.decide(ctx, t, 'bulk-export', { kind: 'practice' }, null);
    await assertExporter(tx, ctx);
    assertRecentReauth(g, ctx);
    const parsed = parseInput(input);
    const now = g.clock();
    const { ids, restricted } = await store.activePatients(tx, ctx.practiceId);
    await tx
      .insertInto('exports')
      .values({
        id,
        practice_id: ctx.practiceId,
        requested_by: ctx.actor.id,
        purpose_code: parsed.purposeCode,
        purpose: g.keyring.sealSecret(purposeAt(id), Buffer.from(parsed.purpose, 'utf8')),
        status: 'started',
        patient_count: ids.length,
        exported_patients: null,
        exported_records: null,
        archive_bytes: null,
        sha256: null,
        created_at: now,
        finished_at: null,
      })
      .execute();
    // Counts and the code only: the stated purpose is free text and stays sealed in the registry.
    // `restrictedPatient` lists the export in the anomaly report, like any access to such a chart.
    t.detail = {
      ...(t.detail ?? {}),
      scope: 'practice',
      patients: ids.length,
      restrictedPatients: restricted,
      ...(restricted > 0 ? { restrictedPatient: true } : {}),
      purposeCode: parsed.purposeCode,
    };
    return () => ({ ids, now, passphrase: parsed.passphrase });
  });

  const counts = { patients: 0, records: 0 };
  let settle: (s: ExportSummary) => void = () => undefined;
  const finished = new Promise<ExportSummary>((resolve) => {
    settle = resolve;
  });
  let done = false;
  const fail = async (e: unknown): Promise<void> => {
    if (done) {
      return;
    }
    done = true;
    const aborted = (e as { code?: string })?.code === 'ERR_STREAM_PREMATURE_CLOSE';
    try {
      await store.finishExport(g.db, { id, status: 'failed', at: g.clock(), ...counts });
      await append(
        asCore(g.db),
        { ...ctx, purpose: 'export' },
        {
          action: 'export',
          resourceType: 'export',
          resourceId: id,
          outcome: 'error',
          reason: aborted ? 'aborted' : failureReason(e),
          detail: { scope: 'practice', patients: counts.patients },
        },
        g.clock(),
      );
    } catch {
      // The database went away with the export (the usual reason it failed); the registry row
      // stays `started`, which the list shows as an export that never finished.
    }
    settle({ id, status: 'failed', ...counts, bytes: 0, sha256: null });
  };

  const source = Readable.from(pages(g, ctx, started.ids, counts));
  let archive: Readable;
  try {
    archive = await sealArchive(source, {
      exportId: id,
      createdAt: started.now,
      passphrase: started.passphrase,
      ...(options.kdf ? { kdf: options.kdf } : {}),
    });
  } catch (e) {
    source.destroy();
    await fail(e);
    throw e;
  }

  const hash = createHash('sha256');
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _e, cb: TransformCallback) {
      hash.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
    // The last bytes go out only once the registry says finished.
    flush(cb: TransformCallback) {
      const sha256 = hash.digest('hex');
      store
        .finishExport(g.db, { id, status: 'finished', at: g.clock(), ...counts, bytes, sha256 })
        .then(() => {
          done = true;
          settle({ id, status: 'finished', ...counts, bytes, sha256 });
          cb();
        }, cb);
    },
  });
  pipeline(archive, tap, (e) => {
    if (e) {
      void fail(e);
    }
  });
  return { id, patientCount: started.ids.length, createdAt: started.now, archive: tap, finished };
}

/** NDJSON of the patients, a page at a time; each page is read, decrypted and dropped. */
async function* pages(
  g: GateCore,
  ctx: AccessContext,
  ids: readonly string[],
  counts: { patients: number; records: number },
): AsyncGenerator<Buffer> {
  for (let i = 0; i < ids.length; i += PAGE) {
    const out = await page(g, ctx, ids.slice(i, i + PAGE), counts);
    if (out.length > 0) {
      yield out;
    }
  }
}

async function page(
  g: GateCore,
  ctx: AccessContext,
  ids: readonly string[],
  counts: { patients: number; records: number },
): Promise<Buffer> {
  const linkOf = new Map<string, Link>();
  for (const r of await store.links(g.db, ctx.practiceId, ids)) {
    linkOf.set(r.patient_id, g.link(r.link, r.patient_id));
  }
  const all = [...linkOf.values()];
  const rows = await store.exportPage(g.db, {
    practiceId: ctx.practiceId,
    patientIds: ids,
    pseudonyms: all.map((l) => l.pseudonym),
    keyIds: all.flatMap((l) => [l.identityKeyId, l.clinicalKeyId]),
  });
  const subject = g.subject(ctx);
  const recordsOf = new Map<string, store.ExportRow[]>();
  for (const r of rows) {
    if (r.part === 'record' && r.pseudonym !== null) {
      const list = recordsOf.get(r.pseudonym) ?? [];
      list.push(r);
      recordsOf.set(r.pseudonym, list);
    }
  }
  const identities = rows.filter((r) => r.part === 'identity').sort((a, b) => (a.id < b.id ? -1 : 1));
  const keys = new CallKeys(g.keyring);
  const lines: string[] = [];
  try {
    const wk = wrappedKeys(rows);
    for (const row of identities) {
      const link = linkOf.get(row.id);
      if (!link) {
        throw new CustosError('CUSTOS_ERR_INTEGRITY', `patient link missing (row ${row.id})`);
      }
      const patient = openIdentityRow(keys, wk, row);
      const records = (recordsOf.get(link.pseudonym) ?? [])
        .filter(
          (r) =>
            g.policy(subject, 'bulk-export', { kind: 'record', record: recordFactsOf(r) }, { patient: null })
              .allow,
        )
        .map((r) => openRecordRow(keys, wk, r))
        .sort(byKind);
      for (const entry of toFhirBundle(patient, records).entry ?? []) {
        lines.push(JSON.stringify(entry.resource));
      }
      counts.patients += 1;
      counts.records += records.length;
    }
  } finally {
    keys.dispose();
  }
  return lines.length === 0 ? Buffer.alloc(0) : Buffer.from(`${lines.join('\n')}\n`, 'utf8');
}

/** The registry, newest first, for the privacy officer; the stated purposes are opened. Audited. */
export async function listExports(g: GateCore, ctx: AccessContext): Promise<ExportRecord[]> {
  return g.call(ctx, { action: 'list', resourceType: 'export' }, async (tx, t) => {
    g.decide(ctx, t, 'bulk-export', { kind: 'practice' }, null);
    await assertExporter(tx, ctx);
    const rows = await store.listExports(tx, ctx.practiceId);
    t.detail = { ...(t.detail ?? {}), count: rows.length };
    return () =>
      rows.map((r) => ({
        id: r.id,
        requestedBy: r.requested_by,
        requestedByUsername: r.username,
        purposeCode: r.purpose_code as PurposeCode,
        purpose: g.keyring.openSecret(purposeAt(r.id), r.purpose).toString('utf8'),
        status: r.status as ExportRecord['status'],
        patientCount: r.patient_count,
        exportedPatients: r.exported_patients,
        exportedRecords: r.exported_records,
        archiveBytes: r.archive_bytes === null ? null : Number(r.archive_bytes),
        sha256: r.sha256,
        createdAt: r.created_at,
        finishedAt: r.finished_at,
      }));
  });
}

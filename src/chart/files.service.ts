import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Kysely } from 'kysely';
import type { AccessContext } from '../access/context.ts';
import type { CoreDb } from '../db/schema.ts';
import { CustosError, validationError } from '../errors.ts';
import { sanitizeFileName } from '../files/names.ts';
import { isFileRejected } from '../files/rejection.ts';
import type { FileType } from '../files/sniff.ts';
import { asCore, Denied, type GateCore, openRecordRow, wrappedKeys } from './gate-core.ts';
import { type ClinicalRecord, parseBody, Sensitivity } from './model.ts';

/**
 * Files through the gate: a document record whose encrypted body holds the metadata (title,
 * sanitized file name, detected type, size, SHA-256, blob id) and whose content lives in the
 * file store, encrypted with the patient's data key and bound to the record. Attaching decides
 * first, then streams the upload into the store outside any transaction, then writes the record
 * and its audit entry in one transaction (removing the blob if that fails).
 */

export interface AttachInput {
  readonly content: Readable;
  readonly title: string;
  readonly fileName?: string;
  readonly description?: string;
  readonly category?: string;
  /** When the document was made (ISO 8601); default now. */
  readonly date?: string;
  readonly sensitivity?: 'normal' | 'restricted' | 'psychotherapy';
  /** Largest accepted size in bytes (default 25 MiB). */
  readonly limit?: number;
}

/** Where a document's content is bound: it decrypts for this record only. */
export const blobAt = (recordId: string) => ({
  table: 'record_blobs',
  column: 'content',
  row: recordId,
  version: 1,
});

export async function attachFile(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
  input: AttachInput,
): Promise<{ id: string; version: number; contentType: FileType; size: number }> {
  return g.prepared(
    ctx,
    { action: 'create', resourceType: 'record' },
    async (db, t, keys) => {
      const sensitivity = Sensitivity.safeParse(input.sensitivity ?? 'normal');
      if (!sensitivity.success) {
        throw validationError('sensitivity', 'must be one of normal, restricted, psychotherapy');
      }
      // Validate what can be validated before reading a byte of the upload.
      const now = g.clock();
      parseBody('document', {
        title: input.title,
        contentType: 'application/octet-stream',
        date: input.date ?? now.toISOString(),
        ...(input.description !== undefined ? { description: input.description } : {}),
        ...(input.category !== undefined ? { category: input.category } : {}),
      });
      const p = await g.patientFacts(db, ctx, t, patientId, 'write', {
        kind: 'section',
        section: 'document',
        sensitivity: sensitivity.data,
      });
      if (!g.blobs) {
        throw new CustosError('CUSTOS_ERR_CONFIG', 'no file store is configured');
      }
      const id = randomUUID();
      t.resourceId = id;
      const keyId = p.link.clinicalKeyId;
      const wrapped = await g.wrappedKey(db, keyId);
      const stored = await g.blobs
        .write(input.content, {
          key: keys.key(keyId, wrapped),
          keyId,
          binding: blobAt(id),
          ...(input.limit !== undefined ? { limit: input.limit } : {}),
        })
        .catch((e: unknown) => {
          if (isFileRejected(e)) {
            // Why the file was refused (a reason code, never content) goes into the error entry.
            t.detail = { ...(t.detail ?? {}), kind: 'document', rejected: e.reason };
          }
          throw e;
        });
      return { id, link: p.link, stored, sensitivity: sensitivity.data, now };
    },
    async (tx, t, prep, keys) => {
      const { id, link, stored, now } = prep;
      // The upload took a while: decide again inside the writing transaction (which share-locks
      // the patient row), so a care-team end, a consent change or a merge that committed
      // meanwhile is respected, and the content is still under this patient's key.
      const again = await g.patientFacts(tx, ctx, { ...t }, patientId, 'write', {
        kind: 'section',
        section: 'document',
        sensitivity: prep.sensitivity,
      });
      if (again.link.pseudonym !== link.pseudonym || again.link.clinicalKeyId !== link.clinicalKeyId) {
        throw new CustosError(
          'CUSTOS_ERR_CONFLICT',
          'the patient changed while the file was uploading; upload it again',
        );
      }
      const body = parseBody('document', {
        title: input.title,
        contentType: stored.contentType,
        date: input.date ?? now.toISOString(),
        size: stored.size,
        blobId: stored.blobId,
        sha256: stored.sha256,
        ...(input.fileName !== undefined ? { fileName: sanitizeFileName(input.fileName) } : {}),
        ...(input.description !== undefined ? { description: input.description } : {}),
        ...(input.category !== undefined ? { category: input.category } : {}),
      });
      await g.insertRecord(tx, ctx, keys, {
        id,
        link,
        kind: 'document',
        sensitivity: prep.sensitivity,
        categories: [],
        authorId: ctx.actor.id,
        body,
        now,
      });
      // Type and size only: never the name.
      t.detail = {
        ...(t.detail ?? {}),
        kind: 'document',
        contentType: stored.contentType,
        size: stored.size,
      };
      return () => ({ id, version: 1, contentType: stored.contentType, size: stored.size });
    },
    (prep) => (g.blobs ? g.blobs.remove(prep.stored.blobId) : Promise.resolve(false)),
  );
}

/**
 * A document's record (metadata as the caller may see it) and its content as a stream. The read
 * is audited before anything is decrypted; the stream fails if the stored bytes were changed.
 */
export async function openFile(
  g: GateCore,
  ctx: AccessContext,
  recordId: string,
): Promise<{ record: ClinicalRecord<'document'>; content: Readable }> {
  const opened = await g.read(
    ctx,
    { action: 'read', resourceType: 'record', resourceId: recordId, detail: { file: true } },
    async (db, t) => {
      const head = await g.recordFacts(db, ctx, t, recordId, 'read');
      if (head.kind !== 'document' || head.decision.view.document === undefined) {
        throw new Denied('not-found');
      }
      return {
        query: { records: { recordId }, keyIds: [head.link.clinicalKeyId] },
        reveal: (rows, keys) => {
          const wk = wrappedKeys(rows);
          const row = rows.find((r) => r.part === 'record');
          if (!row) {
            throw new Denied('not-found');
          }
          const record = openRecordRow(keys, wk, row) as ClinicalRecord<'document'>;
          // The file key outlives this call's keys: a copy, wiped when the stream ends.
          const key = Buffer.from(
            keys.key(head.link.clinicalKeyId, wk.get(head.link.clinicalKeyId) as Buffer),
          );
          return { record, key };
        },
      };
    },
  );
  const { record, key } = opened;
  const body = record.body;
  if (!g.blobs || !body.blobId || !body.sha256 || body.size === undefined) {
    key.fill(0);
    throw new CustosError('CUSTOS_ERR_INTEGRITY', `document ${recordId} has no stored content`);
  }
  try {
    const content = await g.blobs.read(body.blobId, {
      key,
      binding: blobAt(recordId),
      expect: { size: body.size, sha256: body.sha256 },
    });
    content.once('close', () => key.fill(0));
    return { record, content };
  } catch (e) {
    key.fill(0);
    throw e;
  }
}

/**
 * Decides, as `openFile` would, whether the caller may download a document, and runs `issue`
 * (which records a download token) in the transaction of the call's audit entry
 * (`download-token`): a token exists only if its issue is audited, and only for someone the
 * policy lets read the file at that moment. Nothing is decrypted; the download itself is an
 * `openFile`, decided and audited again.
 */
export async function authorizeDownload<T>(
  g: GateCore,
  ctx: AccessContext,
  recordId: string,
  issue: (tx: Kysely<CoreDb>) => Promise<T>,
): Promise<T> {
  return g.call(
    ctx,
    { action: 'download-token', resourceType: 'record', resourceId: recordId, detail: { file: true } },
    async (tx, t) => {
      const head = await g.recordFacts(tx, ctx, t, recordId, 'read');
      if (head.kind !== 'document' || head.decision.view.document === undefined) {
        throw new Denied('not-found');
      }
      const issued = await issue(asCore(tx));
      return () => issued;
    },
  );
}

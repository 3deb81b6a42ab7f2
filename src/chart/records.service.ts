import { randomUUID } from 'node:crypto';
import type { AccessContext } from '../access/context.ts';
import { validationError } from '../errors.ts';
import * as store from './chart.store.ts';
import { recordBodyAt, sealJson } from './cipher.ts';
import { Denied, type GateCore, openIdentityRow, openRecordRow, wrappedKeys } from './gate-core.ts';
import {
  type ClinicalRecord,
  type NewRecord,
  type Patient,
  parseBody,
  type RecordKind,
  RecordKinds,
  Sensitivity,
} from './model.ts';

/** Clinical-store calls of the gate: records by pseudonym, versioned, never overwritten. */

export function parseKind(kind: unknown): RecordKind {
  if (typeof kind !== 'string' || !(RecordKinds as string[]).includes(kind)) {
    throw validationError('kind', `must be one of ${RecordKinds.join(', ')}`);
  }
  return kind as RecordKind;
}

export async function createRecord(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
  input: NewRecord,
): Promise<{ id: string; version: number }> {
  return g.call(ctx, { action: 'create', resourceType: 'record' }, async (tx, t, keys) => {
    const kind = parseKind(input.kind);
    const body = parseBody(kind, input.body);
    const sensitivity = Sensitivity.safeParse(input.sensitivity ?? 'normal');
    if (!sensitivity.success) {
      throw validationError('sensitivity', 'must be one of normal, restricted, psychotherapy');
    }
    const { link } = await g.patientFacts(tx, ctx, t, patientId);
    const id = randomUUID();
    t.resourceId = id;
    const now = g.clock();
    const wrapped = await g.wrappedKey(tx, link.clinicalKeyId);
    await tx
      .insertInto('records')
      .values({
        id,
        practice_id: ctx.practiceId,
        pseudonym: link.pseudonym,
        kind,
        sensitivity: sensitivity.data,
        author_id: input.authorId ?? ctx.actor.id,
        status: 'active',
        current_version: 1,
        created_at: now,
        updated_at: now,
      })
      .execute();
    await tx
      .insertInto('record_versions')
      .values({
        record_id: id,
        version: 1,
        body: sealJson(keys.key(link.clinicalKeyId, wrapped), link.clinicalKeyId, recordBodyAt(id, 1), body),
        created_at: now,
        created_by: ctx.actor.id,
      })
      .execute();
    return () => ({ id, version: 1 });
  });
}

/** One record: its current version, or every version (history). */
export async function readRecord(
  g: GateCore,
  ctx: AccessContext,
  recordId: string,
  allVersions: boolean,
): Promise<ClinicalRecord[]> {
  return g.read(
    ctx,
    { action: allVersions ? 'history' : 'read', resourceType: 'record', resourceId: recordId },
    async (db, t) => {
      const { link } = await g.recordFacts(db, ctx, t, recordId);
      return {
        query: { records: { recordId, allVersions }, keyIds: [link.clinicalKeyId] },
        reveal: (rows, keys) => {
          const wk = wrappedKeys(rows);
          const found = rows.filter((r) => r.part === 'record').map((r) => openRecordRow(keys, wk, r));
          if (found.length === 0) {
            throw new Denied('not-found');
          }
          return found;
        },
      };
    },
  );
}

export async function updateRecord(
  g: GateCore,
  ctx: AccessContext,
  recordId: string,
  input: { expectedVersion: number; body: unknown; status?: 'active' | 'entered-in-error' },
): Promise<{ version: number }> {
  return g.call(
    ctx,
    { action: 'update', resourceType: 'record', resourceId: recordId },
    async (tx, t, keys) => {
      const head = await g.recordFacts(tx, ctx, t, recordId);
      const body = parseBody(parseKind(head.kind), input.body);
      const [current] = await store.loadRecords(tx, { practiceId: ctx.practiceId, recordId });
      if (!current) {
        throw new Denied('not-found');
      }
      const version = await g.bumpVersion(tx, 'records', recordId, input.expectedVersion);
      const now = g.clock();
      await tx
        .updateTable('records')
        .set({ updated_at: now, ...(input.status ? { status: input.status } : {}) })
        .where('id', '=', recordId)
        .execute();
      await tx
        .insertInto('record_versions')
        .values({
          record_id: recordId,
          version,
          body: sealJson(
            keys.key(current.keyId, current.wrappedKey),
            current.keyId,
            recordBodyAt(recordId, version),
            body,
          ),
          created_at: now,
          created_by: ctx.actor.id,
        })
        .execute();
      return () => ({ version });
    },
  );
}

export async function listRecords(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
  kind: RecordKind | undefined,
): Promise<ClinicalRecord[]> {
  return g.read(ctx, { action: 'list', resourceType: 'record' }, async (db, t) => {
    const k = kind === undefined ? undefined : parseKind(kind);
    const { link } = await g.patientFacts(db, ctx, t, patientId);
    if (k) {
      t.detail = { kind: k };
    }
    return {
      query: {
        records: { pseudonym: link.pseudonym, ...(k ? { kind: k } : {}) },
        keyIds: [link.clinicalKeyId],
      },
      reveal: (rows, keys) => {
        const wk = wrappedKeys(rows);
        return rows.filter((r) => r.part === 'record').map((r) => openRecordRow(keys, wk, r));
      },
    };
  });
}

/** Identity plus every current record, in one audited statement. */
export async function readChart(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
  action: 'read' | 'export',
): Promise<{ patient: Patient; records: ClinicalRecord[] }> {
  return g.read(ctx, { action, resourceType: 'chart' }, async (db, t) => {
    const p = await g.patientFacts(db, ctx, t, patientId);
    return {
      query: {
        identity: { patientIds: [p.id] },
        records: { pseudonym: p.link.pseudonym },
        keyIds: [p.link.identityKeyId, p.link.clinicalKeyId],
      },
      reveal: (rows, keys) => {
        const wk = wrappedKeys(rows);
        const identity = rows.find((r) => r.part === 'identity');
        if (!identity) {
          throw new Denied('not-found');
        }
        return {
          patient: openIdentityRow(keys, wk, identity),
          records: rows.filter((r) => r.part === 'record').map((r) => openRecordRow(keys, wk, r)),
        };
      },
    };
  });
}

import { randomUUID } from 'node:crypto';
import { categoriesOf } from '../access/categories.ts';
import type { AccessContext } from '../access/context.ts';
import { CLINICAL_SECTIONS } from '../access/grants.ts';
import { CONSENT_CATEGORIES, type View } from '../access/policy.ts';
import { CustosError, validationError } from '../errors.ts';
import { isUuid } from '../ids.ts';
import * as store from './chart.store.ts';
import { recordBodyAt, sealJson } from './cipher.ts';
import { type Dossier, summarize } from './dossier.ts';
import {
  Denied,
  type GateCore,
  openIdentityRow,
  openRecordRow,
  projectIdentity,
  projectRecord,
  visibleRecords,
  wrappedKeys,
} from './gate-core.ts';
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

export function parseCategories(input: unknown): string[] {
  if (input === undefined) {
    return [];
  }
  if (!Array.isArray(input) || !input.every((c) => (CONSENT_CATEGORIES as readonly unknown[]).includes(c))) {
    throw validationError('categories', `must be a list of ${CONSENT_CATEGORIES.join(', ')}`);
  }
  return input as string[];
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
    const explicit = parseCategories(input.categories);
    const { link } = await g.patientFacts(tx, ctx, t, patientId, 'write', {
      kind: 'section',
      section: kind,
      sensitivity: sensitivity.data,
    });
    const id = randomUUID();
    t.resourceId = id;
    const authorId = input.authorId ?? ctx.actor.id;
    await g.insertRecord(tx, ctx, keys, {
      id,
      link,
      kind,
      sensitivity: sensitivity.data,
      categories: categoriesOf(kind, body, explicit),
      authorId,
      body,
      now: g.clock(),
      // A user's new note is a draft until its author signs it; notes the system loads
      // (imports of existing charts) were final where they came from.
      signed: kind === 'note' && ctx.actor.kind === 'system' ? { by: authorId } : undefined,
    });
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
      const { link, decision, record } = await g.recordFacts(db, ctx, t, recordId, 'read');
      const fields = decision.view[record.section] ?? [];
      return {
        query: { records: { recordId, allVersions }, keyIds: [link.clinicalKeyId] },
        reveal: (rows, keys) => {
          const wk = wrappedKeys(rows);
          const found = rows
            .filter((r) => r.part === 'record')
            .map((r) => projectRecord(openRecordRow(keys, wk, r), fields));
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
      const head = await g.recordFacts(tx, ctx, t, recordId, 'write');
      if (head.signed_at !== null) {
        throw new CustosError('CUSTOS_ERR_CONFLICT', 'a signed note cannot be edited; amend it instead');
      }
      const kind = parseKind(head.kind);
      const body = parseBody(kind, input.body);
      if (input.status !== undefined && input.status !== 'active' && input.status !== 'entered-in-error') {
        throw validationError('status', 'must be active or entered-in-error');
      }
      const [current] = await store.loadRecords(tx, { practiceId: ctx.practiceId, recordId });
      if (!current) {
        throw new Denied('not-found');
      }
      const version = await g.bumpVersion(tx, 'records', recordId, input.expectedVersion);
      const now = g.clock();
      await tx
        .updateTable('records')
        .set({
          updated_at: now,
          // Explicit categories stay; derived ones follow the new body.
          categories: categoriesOf(kind, body, head.categories),
          ...(input.status ? { status: input.status } : {}),
        })
        .where('id', '=', recordId)
        .execute();
      await tx
        .insertInto('record_versions')
        .values({
          record_id: recordId,
          practice_id: ctx.practiceId,
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

/** Largest page of a record list. */
export const MAX_PAGE = 500;

/** An opaque cursor: the position (created_at, id) of a page's last fetched row. */
export const encodeCursor = (at: { createdAt: Date; id: string }): string =>
  Buffer.from(`${at.createdAt.toISOString()}|${at.id}`, 'utf8').toString('base64url');

export function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  const [iso, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const createdAt = new Date(iso ?? '');
  if (!id || !isUuid(id) || Number.isNaN(createdAt.getTime()) || cursor.length > 200) {
    throw validationError('after', 'is not a cursor this server returned');
  }
  return { createdAt, id };
}

/**
 * The patient's current records, oldest first. With `limit`, one page of at most `limit` records
 * the caller may see; `next` is the cursor after the last of them (null on the last page). Pages
 * are cut among visible records only: a cursor never points at, and a page never counts, a record
 * the caller may not see.
 */
export async function listRecordsPage(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
  options: { kind?: RecordKind | undefined; limit?: number | undefined; after?: string | undefined },
): Promise<{ records: ClinicalRecord[]; next: string | null }> {
  const { limit } = options;
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE)) {
    throw validationError('limit', `must be an integer from 1 to ${MAX_PAGE}`);
  }
  const after = options.after === undefined ? undefined : decodeCursor(options.after);
  // One more than the page, to know whether a next page exists.
  const found = await listRecordsIn(
    g,
    ctx,
    patientId,
    options.kind,
    after ? { after } : {},
    limit === undefined ? undefined : limit + 1,
  );
  if (limit === undefined || found.length <= limit) {
    return { records: found, next: null };
  }
  const records = found.slice(0, limit);
  const last = records[limit - 1] as ClinicalRecord;
  return { records, next: encodeCursor({ createdAt: last.createdAt, id: last.id }) };
}

export function listRecords(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
  kind: RecordKind | undefined,
): Promise<ClinicalRecord[]> {
  return listRecordsIn(g, ctx, patientId, kind, undefined, undefined);
}

async function listRecordsIn(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
  kind: RecordKind | undefined,
  page: store.RecordPage | undefined,
  atMost: number | undefined,
): Promise<ClinicalRecord[]> {
  return g.read(ctx, { action: 'list', resourceType: 'record' }, async (db, t) => {
    const k = kind === undefined ? undefined : parseKind(kind);
    if (k) {
      t.detail = { kind: k };
    }
    const p = await g.patientFacts(
      db,
      ctx,
      t,
      patientId,
      'read',
      k ? { kind: 'section', section: k } : { kind: 'chart' },
    );
    // Listing records needs a grant on some clinical section (front desk has none).
    if (!k && !CLINICAL_SECTIONS.some((s) => p.decision.view[s] !== undefined)) {
      throw new Denied('no-grant');
    }
    return {
      query: {
        records: { pseudonym: p.link.pseudonym, ...(k ? { kind: k } : {}), ...(page ? { page } : {}) },
        keyIds: [p.link.clinicalKeyId],
      },
      reveal: (rows, keys) => visibleRecords(g, ctx, rows, p.facts, 'read', keys, atMost),
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
  return (await chartWithView(g, ctx, patientId, action, false)).chart;
}

/** The dossier's front page (see dossier.ts): one audited read of the chart, summarized. */
export async function readDossier(g: GateCore, ctx: AccessContext, patientId: string): Promise<Dossier> {
  const { chart, view } = await chartWithView(g, ctx, patientId, 'read', true);
  return summarize(chart.patient, chart.records, view, ctx.actor.id);
}

async function chartWithView(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
  action: 'read' | 'export',
  summary: boolean,
): Promise<{ chart: { patient: Patient; records: ClinicalRecord[] }; view: View }> {
  return g.read(
    ctx,
    { action, resourceType: 'chart', ...(summary ? { detail: { summary: true } } : {}) },
    async (db, t) => {
      const p = await g.patientFacts(db, ctx, t, patientId, action, { kind: 'chart' });
      const identityVisible =
        p.decision.view.demographics !== undefined || p.decision.view.contact !== undefined;
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
          const patient = openIdentityRow(keys, wk, identity);
          return {
            chart: {
              patient: {
                ...patient,
                identity: identityVisible
                  ? projectIdentity(patient.identity, p.decision.view)
                  : ({} as Patient['identity']),
              },
              records: visibleRecords(g, ctx, rows, p.facts, action, keys),
            },
            view: p.decision.view,
          };
        },
      };
    },
  );
}

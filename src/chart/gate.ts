import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { AccessContext } from '../access/context.ts';
import { type ChartAction, type DenyReason, decide, type Facts, type ResourceType } from '../access/policy.ts';
import { append } from '../audit/append.ts';
import type { AuditEvent } from '../audit/entry.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { CoreDb } from '../db/schema.ts';
import { CustosError, isCustosError, notFound, validationError } from '../errors.ts';
import * as store from './chart.store.ts';
import type { ChartTables } from './tables.ts';
import { CallKeys, type Link, linkAt, newDataKey, newPseudonym, patientBodyAt, recordBodyAt, sealJson } from './cipher.ts';
import {
  type ClinicalRecord,
  type NewRecord,
  type Patient,
  type PatientIdentity,
  parseBody,
  parseIdentity,
  type RecordKind,
  RecordKinds,
  Sensitivity,
} from './model.ts';
import { indexTerms, type PatientQuery, queryTerms } from './search-terms.ts';

/** Thrown inside a gate transaction when the policy denies; becomes "not found" for the caller. */
class Denied extends Error {
  constructor(readonly reason: DenyReason) {
    super(reason);
  }
}

interface Target {
  action: ChartAction;
  resourceType: ResourceType;
  resourceId?: string | null;
  patientPseudonym?: string | null;
  detail?: AuditEvent['detail'];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SEARCH_CANDIDATES = 1000;

const Query = z
  .object({
    familyPrefix: z.string().trim().min(3, 'must have at least 3 characters').max(100).optional(),
    family: z.string().trim().min(1).max(100).optional(),
    birthDate: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date YYYY-MM-DD').optional(),
    identifier: z.object({ type: z.enum(['mrn', 'national', 'insurance']), value: z.string().trim().min(1).max(100) }).optional(),
    phone: z.string().trim().min(4).max(40).optional(),
    email: z.string().trim().min(3).max(254).optional(),
    limit: z.number().int().min(1).max(200).default(50),
  })
  .strict();

export interface ChartOptions {
  readonly db: Kysely<CoreDb>;
  /** Internal: set for the Chart that `batch` hands out, bound to one open transaction. */
  readonly transaction?: Kysely<store.ChartDb>;
  readonly keyring: Keyring;
  /** The only thing tests may fake. */
  readonly clock?: () => Date;
}

/**
 * The gate: the only way to create, read, update, list, search and see the history of health
 * data. Each call authorizes (src/access), does its reads and writes, appends its audit entry in
 * the same transaction and only then decrypts. A denied or failed call is audited in its own
 * transaction and returns nothing. Exactly one audit entry per call.
 *
 * @example
 *   const { id } = await chart.createPatient(ctx, identity);
 *   const patient = await chart.readPatient(ctx, id);
 */
export class Chart {
  readonly #db: Kysely<store.ChartDb>;
  readonly #keyring: Keyring;
  readonly #clock: () => Date;
  readonly #options: ChartOptions;
  readonly #inBatch: boolean;

  constructor(options: ChartOptions) {
    this.#options = options;
    this.#db = options.transaction ?? options.db.withTables<ChartTables>();
    this.#inBatch = options.transaction !== undefined;
    this.#keyring = options.keyring;
    this.#clock = options.clock ?? (() => new Date());
  }

  /**
   * Runs several gate calls in one transaction (one FHIR bundle is all or nothing). Each call
   * still writes its own audit entry; the batch adds one entry for itself (`action`, with
   * `detail`), and if anything fails, everything rolls back and one error entry is written.
   */
  async batch<T>(
    ctx: AccessContext,
    target: { action: 'import'; detail?: (result: T) => AuditEvent['detail'] },
    fn: (chart: Chart) => Promise<T>,
  ): Promise<T> {
    if (this.#inBatch) {
      throw new Error('batches do not nest');
    }
    const t: Target = { action: target.action, resourceType: 'bundle' };
    try {
      return await this.#db.transaction().execute(async (tx) => {
        this.#authorize(ctx, t, { patientInPractice: false, onCareTeam: false });
        const result = await fn(new Chart({ ...this.#options, transaction: tx }));
        await append(asCore(tx), ctx, { ...t, outcome: 'success', detail: target.detail?.(result) ?? null }, this.#clock());
        return result;
      });
    } catch (e) {
      const denied = e instanceof Denied;
      await append(asCore(this.#db), ctx, { ...t, outcome: denied ? 'denied' : 'error', reason: failureReason(e) }, this.#clock());
      throw denied ? notFound('bundle') : e;
    }
  }

  /** Registers a patient; `careTeam` user ids join its care team from now on. */
  async createPatient(
    ctx: AccessContext,
    input: unknown,
    options: { careTeam?: readonly string[] } = {},
  ): Promise<{ id: string; version: number }> {
    return this.#call(ctx, { action: 'create', resourceType: 'patient' }, async (tx, t) => {
      const identity = parseIdentity(input);
      this.#authorize(ctx, t, { patientInPractice: false, onCareTeam: false });
      const now = this.#clock();
      const id = randomUUID();
      const pseudonym = newPseudonym();
      t.patientPseudonym = pseudonym;
      const { dek, identityKeyId, clinicalKeyId } = newDataKey();
      try {
        const keyRows = [identityKeyId, clinicalKeyId].map((keyId) => {
          const { kekId, wrapped } = this.#keyring.wrapDataKey(keyId, dek);
          return { id: keyId, practice_id: ctx.practiceId, kek_id: kekId, wrapped, created_at: now };
        });
        await tx.insertInto('data_keys').values(keyRows).execute();
        await tx
          .insertInto('patients')
          .values({ id, practice_id: ctx.practiceId, current_version: 1, active: true, created_at: now, updated_at: now })
          .execute();
        await tx
          .insertInto('patient_versions')
          .values({
            patient_id: id,
            version: 1,
            body: sealJson(dek, identityKeyId, patientBodyAt(id, 1), identity),
            created_at: now,
            created_by: ctx.actor.id,
          })
          .execute();
        const link: Link = { pseudonym, clinicalKeyId };
        await tx
          .insertInto('patient_links')
          .values({
            patient_id: id,
            practice_id: ctx.practiceId,
            link: this.#keyring.sealLink(linkAt(id), Buffer.from(JSON.stringify(link))),
            pseudonym_index: this.#keyring.pseudonymIndex(pseudonym),
          })
          .execute();
      } finally {
        dek.fill(0);
      }
      await store.replaceIndex(tx, { practiceId: ctx.practiceId, patientId: id, rows: this.#indexRows(identity) });
      for (const userId of options.careTeam ?? []) {
        await tx
          .insertInto('care_team')
          .values({ practice_id: ctx.practiceId, patient_id: id, user_id: userId, starts_at: now, ends_at: null, added_by: ctx.actor.id })
          .execute();
      }
      return () => ({ id, version: 1 });
    });
  }

  /** Reads a patient's current identity (demographics, contact details, identifiers). */
  async readPatient(ctx: AccessContext, patientId: string): Promise<Patient> {
    return this.#call(ctx, { action: 'read', resourceType: 'patient' }, async (tx, t, keys) => {
      const head = await this.#patientFor(tx, ctx, t, patientId, 'read');
      return () => this.#openPatient(keys, head);
    });
  }

  /** Every identity version, oldest first. */
  async patientHistory(ctx: AccessContext, patientId: string): Promise<Patient[]> {
    return this.#call(ctx, { action: 'history', resourceType: 'patient' }, async (tx, t, keys) => {
      const head = await this.#patientFor(tx, ctx, t, patientId, 'history');
      const versions = await store.patientVersions(tx, head.id);
      return () =>
        versions.map((v) => ({
          id: head.id,
          version: v.version,
          active: head.active,
          createdAt: head.createdAt,
          updatedAt: v.created_at,
          identity: keys.openJson<PatientIdentity>(v.key_id, v.wrapped, patientBodyAt(head.id, v.version), v.body),
        }));
    });
  }

  /** Writes a new identity version; fails with a conflict when `expectedVersion` is stale. */
  async updatePatient(ctx: AccessContext, patientId: string, expectedVersion: number, input: unknown): Promise<{ version: number }> {
    return this.#call(ctx, { action: 'update', resourceType: 'patient' }, async (tx, t, keys) => {
      const identity = parseIdentity(input);
      const head = await this.#patientFor(tx, ctx, t, patientId, 'update');
      const version = await this.#bumpVersion(tx, 'patients', head.id, expectedVersion);
      const now = this.#clock();
      await tx
        .insertInto('patient_versions')
        .values({
          patient_id: head.id,
          version,
          body: sealJson(keys.key(head.keyId, head.wrappedKey), head.keyId, patientBodyAt(head.id, version), identity),
          created_at: now,
          created_by: ctx.actor.id,
        })
        .execute();
      await tx.updateTable('patients').set({ updated_at: now }).where('id', '=', head.id).execute();
      await store.replaceIndex(tx, { practiceId: ctx.practiceId, patientId: head.id, rows: this.#indexRows(identity) });
      return () => ({ version });
    });
  }

  /**
   * Finds patients by blind index, never decrypting the table: only candidates are decrypted.
   * A user sees only patients on their care team; the result never reveals the others.
   */
  async searchPatients(ctx: AccessContext, input: unknown): Promise<Patient[]> {
    return this.#call(ctx, { action: 'search', resourceType: 'patient' }, async (tx, t, keys) => {
      const q = parseQuery(input);
      this.#authorize(ctx, t, { patientInPractice: false, onCareTeam: false });
      const { terms, recheck } = queryTerms(q);
      const ids = await store.searchIndex(tx, {
        practiceId: ctx.practiceId,
        terms: terms.map((x) => ({ kind: x.kind, hash: this.#keyring.blindIndex(x.kind, x.value) })),
        limit: SEARCH_CANDIDATES,
      });
      const heads = await store.loadPatientHeads(tx, { practiceId: ctx.practiceId, patientIds: ids, actorId: ctx.actor.id, now: this.#clock() });
      const visible = heads.filter((h) => ctx.actor.kind === 'system' || h.onTeam);
      // The recheck needs the identity; it runs on candidates only, before the audit entry names them.
      const matches = visible
        .map((h) => this.#openPatient(keys, h))
        .filter((p) => recheck(p.identity))
        .sort((a, b) => a.id.localeCompare(b.id))
        .slice(0, q.limit);
      const byId = new Map(visible.map((h) => [h.id, h]));
      t.detail = { count: matches.length, pseudonyms: matches.map((p) => this.#link(byId.get(p.id)?.link, p.id).pseudonym) };
      return () => matches;
    });
  }

  /** Adds a user to a patient's care team (a system actor or a current member may). */
  async addCareTeamMember(ctx: AccessContext, patientId: string, userId: string, options: { endsAt?: Date } = {}): Promise<void> {
    return this.#call(ctx, { action: 'care-team', resourceType: 'care-team' }, async (tx, t) => {
      const head = await this.#patientFor(tx, ctx, t, patientId, 'care-team');
      t.detail = { userId };
      await tx
        .insertInto('care_team')
        .values({
          practice_id: ctx.practiceId,
          patient_id: head.id,
          user_id: userId,
          starts_at: this.#clock(),
          ends_at: options.endsAt ?? null,
          added_by: ctx.actor.id,
        })
        .execute();
      return () => undefined;
    });
  }

  /** Creates a clinical record for a patient. */
  async createRecord<K extends RecordKind>(ctx: AccessContext, patientId: string, input: NewRecord<K>): Promise<{ id: string; version: number }> {
    return this.#call(ctx, { action: 'create', resourceType: 'record' }, async (tx, t, keys) => {
      const kind = parseKind(input.kind);
      const body = parseBody(kind, input.body);
      const sensitivity = Sensitivity.parse(input.sensitivity ?? 'normal');
      const head = await this.#patientFor(tx, ctx, t, patientId, 'create');
      const link = this.#link(head.link, head.id);
      const id = randomUUID();
      t.resourceId = id;
      const now = this.#clock();
      const wrapped = await this.#wrappedKey(tx, link.clinicalKeyId);
      await tx
        .insertInto('records')
        .values({
          id,
          practice_id: ctx.practiceId,
          pseudonym: link.pseudonym,
          kind,
          sensitivity,
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

  /** Reads one clinical record (its current version). */
  async readRecord(ctx: AccessContext, recordId: string): Promise<ClinicalRecord> {
    return this.#call(ctx, { action: 'read', resourceType: 'record', resourceId: recordId }, async (tx, t, keys) => {
      await this.#recordFor(tx, ctx, t, recordId, 'read');
      const [row] = await store.loadRecords(tx, { practiceId: ctx.practiceId, recordId });
      if (!row) {
        throw new Denied('not-found');
      }
      return () => openRecord(keys, row);
    });
  }

  /** Every version of one record, oldest first. */
  async recordHistory(ctx: AccessContext, recordId: string): Promise<ClinicalRecord[]> {
    return this.#call(ctx, { action: 'history', resourceType: 'record', resourceId: recordId }, async (tx, t, keys) => {
      await this.#recordFor(tx, ctx, t, recordId, 'history');
      const rows = await store.loadRecords(tx, { practiceId: ctx.practiceId, recordId, allVersions: true });
      return () => rows.map((r) => openRecord(keys, r));
    });
  }

  /**
   * Writes a new version of a record; the old ones stay readable. `status` marks a record
   * entered-in-error instead of deleting it.
   */
  async updateRecord(
    ctx: AccessContext,
    recordId: string,
    input: { expectedVersion: number; body: unknown; status?: 'active' | 'entered-in-error' },
  ): Promise<{ version: number }> {
    return this.#call(ctx, { action: 'update', resourceType: 'record', resourceId: recordId }, async (tx, t, keys) => {
      const head = await this.#recordFor(tx, ctx, t, recordId, 'update');
      const body = parseBody(parseKind(head.kind), input.body);
      const [current] = await store.loadRecords(tx, { practiceId: ctx.practiceId, recordId });
      if (!current) {
        throw new Denied('not-found');
      }
      const version = await this.#bumpVersion(tx, 'records', recordId, input.expectedVersion);
      const now = this.#clock();
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
          body: sealJson(keys.key(current.keyId, current.wrappedKey), current.keyId, recordBodyAt(recordId, version), body),
          created_at: now,
          created_by: ctx.actor.id,
        })
        .execute();
      return () => ({ version });
    });
  }

  /** A patient's records, optionally of one kind, current versions, oldest first. */
  async listRecords(ctx: AccessContext, patientId: string, kind?: RecordKind): Promise<ClinicalRecord[]> {
    return this.#call(ctx, { action: 'list', resourceType: 'record' }, async (tx, t, keys) => {
      const k = kind === undefined ? undefined : parseKind(kind);
      const head = await this.#patientFor(tx, ctx, t, patientId, 'list');
      const link = this.#link(head.link, head.id);
      const rows = await store.loadRecords(tx, { practiceId: ctx.practiceId, pseudonym: link.pseudonym, ...(k ? { kind: k } : {}) });
      t.detail = { count: rows.length, ...(k ? { kind: k } : {}) };
      return () => rows.map((r) => openRecord(keys, r));
    });
  }

  /** A patient's whole chart: identity plus every current clinical record. One audit entry. */
  async readChart(ctx: AccessContext, patientId: string): Promise<{ patient: Patient; records: ClinicalRecord[] }> {
    return this.#chart(ctx, patientId, 'read');
  }

  /** The chart for export (right of access, `custos export`): audited as an export. */
  async exportChart(ctx: AccessContext, patientId: string): Promise<{ patient: Patient; records: ClinicalRecord[] }> {
    return this.#chart(ctx, patientId, 'export');
  }

  async #chart(ctx: AccessContext, patientId: string, action: 'read' | 'export') {
    return this.#call(ctx, { action, resourceType: 'chart' }, async (tx, t, keys) => {
      const head = await this.#patientFor(tx, ctx, t, patientId, action);
      const link = this.#link(head.link, head.id);
      const rows = await store.loadRecords(tx, { practiceId: ctx.practiceId, pseudonym: link.pseudonym });
      t.detail = { count: rows.length };
      return () => ({ patient: this.#openPatient(keys, head), records: rows.map((r) => openRecord(keys, r)) });
    });
  }

  // --- the orchestration every call goes through ---------------------------------------------

  async #call<T>(ctx: AccessContext, target: Target, work: (tx: store.Tx, t: Target, keys: CallKeys) => Promise<() => T>): Promise<T> {
    const t: Target = { ...target };
    const keys = new CallKeys(this.#keyring);
    if (this.#inBatch) {
      // Inside a batch: same steps on the batch's transaction; a failure aborts the whole batch,
      // which audits it once.
      try {
        const reveal = await work(this.#db, t, keys);
        await append(asCore(this.#db), ctx, { ...t, outcome: 'success' }, this.#clock());
        return reveal();
      } finally {
        keys.dispose();
      }
    }
    try {
      return await this.#db.transaction().execute(async (tx) => {
        const reveal = await work(tx, t, keys);
        await append(asCore(tx), ctx, { ...t, outcome: 'success' }, this.#clock());
        // Decrypt only after the audit entry is written, inside the same transaction: if
        // decryption fails, the transaction rolls back and the failure is audited below.
        return reveal();
      });
    } catch (e) {
      const denied = e instanceof Denied;
      const event: AuditEvent = {
        ...t,
        outcome: denied ? 'denied' : 'error',
        reason: failureReason(e),
      };
      try {
        await append(asCore(this.#db), ctx, event, this.#clock());
      } catch (auditError) {
        // The audit store itself failed (this may be why the call failed). Nothing was returned
        // and the transaction rolled back; the original error is the one worth reporting.
        if (!denied && !isCustosError(e)) {
          throw e;
        }
        throw auditError;
      }
      throw denied ? notFound(t.resourceType) : e;
    } finally {
      keys.dispose();
    }
  }

  #authorize(ctx: AccessContext, t: Target, facts: Facts): void {
    const d = decide(ctx, t.action, t.resourceType, facts);
    if (!d.allow) {
      throw new Denied(d.reason);
    }
  }

  /** Loads the patient a call is about and decides; the audit target learns its pseudonym. */
  async #patientFor(tx: store.Tx, ctx: AccessContext, t: Target, patientId: string, action: ChartAction): Promise<store.PatientHead> {
    if (!UUID.test(patientId)) {
      throw new Denied('not-found');
    }
    const [head] = await store.loadPatientHeads(tx, { practiceId: ctx.practiceId, patientIds: [patientId], actorId: ctx.actor.id, now: this.#clock() });
    if (!head) {
      t.resourceId = t.resourceId ?? patientId;
      throw new Denied('not-found');
    }
    t.patientPseudonym = this.#link(head.link, head.id).pseudonym;
    const d = decide(ctx, action, t.resourceType, { patientInPractice: true, onCareTeam: head.onTeam });
    if (!d.allow) {
      throw new Denied(d.reason);
    }
    return head;
  }

  async #recordFor(tx: store.Tx, ctx: AccessContext, t: Target, recordId: string, action: ChartAction) {
    if (!UUID.test(recordId)) {
      throw new Denied('not-found');
    }
    const head = await store.loadRecordHead(tx, { practiceId: ctx.practiceId, recordId });
    if (!head) {
      throw new Denied('not-found');
    }
    t.patientPseudonym = head.pseudonym;
    const patientId = await store.patientIdForPseudonymIndex(tx, ctx.practiceId, this.#keyring.pseudonymIndex(head.pseudonym));
    if (!patientId) {
      throw new Denied('not-found');
    }
    const [p] = await store.loadPatientHeads(tx, { practiceId: ctx.practiceId, patientIds: [patientId], actorId: ctx.actor.id, now: this.#clock() });
    const d = decide(ctx, action, 'record', { patientInPractice: p !== undefined, onCareTeam: p?.onTeam ?? false });
    if (!d.allow) {
      throw new Denied(d.reason);
    }
    return head;
  }

  /** Advances `current_version` only if it still equals `expected` (optimistic concurrency). */
  async #bumpVersion(tx: store.Tx, table: 'patients' | 'records', id: string, expected: number): Promise<number> {
    if (!Number.isInteger(expected) || expected < 1) {
      throw validationError('expectedVersion', 'must be a positive integer');
    }
    const row = await tx
      .updateTable(table)
      .set({ current_version: expected + 1 })
      .where('id', '=', id)
      .where('current_version', '=', expected)
      .returning('current_version')
      .executeTakeFirst();
    if (!row) {
      throw new CustosError('CUSTOS_ERR_VERSION_CONFLICT', `${table === 'patients' ? 'patient' : 'record'} was changed since version ${expected}`);
    }
    return row.current_version;
  }

  async #wrappedKey(tx: store.Tx, keyId: string): Promise<Buffer> {
    const row = await tx.selectFrom('data_keys').select('wrapped').where('id', '=', keyId).executeTakeFirst();
    if (!row) {
      throw new CustosError('CUSTOS_ERR_INTEGRITY', `data key ${keyId} is missing`);
    }
    return row.wrapped;
  }

  #link(blob: Buffer | undefined, patientId: string): Link {
    if (!blob) {
      throw new CustosError('CUSTOS_ERR_INTEGRITY', `patient link missing (row ${patientId})`);
    }
    return JSON.parse(this.#keyring.openLink(linkAt(patientId), blob).toString('utf8')) as Link;
  }

  #openPatient(keys: CallKeys, head: store.PatientHead): Patient {
    return {
      id: head.id,
      version: head.version,
      active: head.active,
      createdAt: head.createdAt,
      updatedAt: head.updatedAt,
      identity: keys.openJson<PatientIdentity>(head.keyId, head.wrappedKey, patientBodyAt(head.id, head.version), head.body),
    };
  }

  #indexRows(identity: PatientIdentity) {
    return indexTerms(identity).map((x) => ({ kind: x.kind, hash: this.#keyring.blindIndex(x.kind, x.value) }));
  }
}

const failureReason = (e: unknown): string => (e instanceof Denied ? e.reason : isCustosError(e) ? e.code : 'internal');

/** The chart handle seen as the core schema (a superset), for the audit append. */
const asCore = (db: Kysely<store.ChartDb>): Kysely<CoreDb> => db as unknown as Kysely<CoreDb>;

function openRecord(keys: CallKeys, r: store.RecordRow): ClinicalRecord {
  return {
    id: r.id,
    kind: r.kind as RecordKind,
    version: r.version,
    sensitivity: r.sensitivity as Sensitivity,
    authorId: r.authorId,
    status: r.status as ClinicalRecord['status'],
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    body: keys.openJson(r.keyId, r.wrappedKey, recordBodyAt(r.id, r.version), r.body),
  };
}

function parseKind(kind: unknown): RecordKind {
  if (typeof kind !== 'string' || !(RecordKinds as string[]).includes(kind)) {
    throw validationError('kind', `must be one of ${RecordKinds.join(', ')}`);
  }
  return kind as RecordKind;
}

function parseQuery(input: unknown): z.infer<typeof Query> {
  const r = Query.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw validationError(['query', ...(issue?.path ?? [])].join('.'), issue?.message ?? 'is invalid');
  }
  const q = r.data;
  if (q.birthDate !== undefined && q.family === undefined) {
    throw validationError('query.birthDate', 'needs query.family as well');
  }
  if (!q.familyPrefix && !q.family && !q.identifier && !q.phone && !q.email) {
    throw validationError('query', 'needs at least one of familyPrefix, family, identifier, phone, email');
  }
  return q satisfies PatientQuery;
}

import type { Kysely } from 'kysely';
import type { AccessContext, Purpose } from '../access/context.ts';
import { ALL, type Fields, IDENTITY_FIELDS, IDENTITY_SECTIONS } from '../access/grants.ts';
import { interimDecide } from '../access/interim.ts';
import {
  type Action,
  type Allow,
  type Consent,
  type DenyReason,
  decide,
  type PatientFacts,
  type Sensitivity as PolicySensitivity,
  project,
  type RecordFacts,
  type Resource,
  type Subject,
  subjectOf,
  type View,
} from '../access/policy.ts';
import { append, auditRow } from '../audit/append.ts';
import type { AuditEvent } from '../audit/entry.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { CoreDb } from '../db/schema.ts';
import { CustosError, isCustosError, notFound, validationError } from '../errors.ts';
import type { BlobStore } from '../files/blob-store.ts';
import { isUuid } from '../ids.ts';
import * as store from './chart.store.ts';
import { CallKeys, type Link, linkAt, patientBodyAt, recordBodyAt, sealJson } from './cipher.ts';
import type { ClinicalRecord, Patient, PatientIdentity, RecordKind, Sensitivity } from './model.ts';
import { indexTerms } from './search-terms.ts';

/** Thrown inside a gate call when the policy denies; becomes "not found" for the caller. */
export class Denied extends Error {
  constructor(readonly reason: DenyReason) {
    super(reason);
  }
}

/** The action an audit entry of a gate call names. */
export type ChartAction =
  /** A message posted in a secure-message thread. */
  | 'post'
  /** A secure-message thread closed (no more posts). */
  | 'close'
  | 'create'
  | 'read'
  | 'update'
  | 'list'
  | 'search'
  | 'history'
  | 'export'
  | 'care-team'
  | 'consent'
  | 'restrict'
  | 'share'
  | 'release'
  | 'break-glass'
  | 'sign'
  | 'amend'
  | 'import'
  | 'report'
  /** Scheduling: a waiting-list entry removed. */
  | 'delete'
  /** Scheduling: a reminder's recipient read to notify the patient (system actor). */
  | 'notify'
  /** A duplicate patient merged into another, and a merge undone (src/chart/merge.service.ts). */
  | 'merge'
  | 'unmerge'
  /** A single-use download token for a file (the download itself is a `read`). */
  | 'download-token'
  /** Patient data sent to a third party (a webhook), recorded for the accounting of disclosures. */
  | 'disclose';

export type ResourceType =
  /** A secure-message thread (its id); a post names the message in the detail. */
  | 'thread'
  /** The staff inbox of secure messages (the entry lists the pseudonyms whose threads it showed). */
  | 'inbox'
  | 'patient'
  | 'record'
  | 'chart'
  | 'care-team'
  | 'consent'
  | 'bundle'
  | 'break-glass'
  | 'amendment-request'
  /** Scheduling (src/chart/appointments.service.ts). */
  | 'appointment'
  | 'appointment-series'
  | 'working-hours'
  | 'availability'
  | 'calendar'
  | 'waiting-list'
  /** An entry of the accounting of disclosures (HIPAA 164.528). */
  | 'disclosure'
  /** A bulk export of the practice (its id is the export id in the registry). */
  | 'export';

/** What the audit entry of a call will say; the call fills in what it learns (pseudonym, detail). */
export interface Target {
  action: ChartAction;
  resourceType: ResourceType;
  resourceId?: string | null;
  patientPseudonym?: string | null;
  detail?: AuditEvent['detail'];
  /** Set when the access relies on break-the-glass: the entry's purpose becomes `emergency`. */
  purpose?: Purpose;
}

/** The context an entry is written with: the call's, with the purpose a break-the-glass access implies. */
const auditCtx = (ctx: AccessContext, t: Target): AccessContext =>
  t.purpose && t.purpose !== ctx.purpose ? { ...ctx, purpose: t.purpose } : ctx;

/** Facts about one patient for the policy, with its decrypted link. */
export interface PatientAccess {
  readonly id: string;
  readonly link: Link;
  readonly facts: PatientFacts;
  readonly decision: Allow;
}

export const failureReason = (e: unknown): string =>
  e instanceof Denied ? e.reason : isCustosError(e) ? e.code : 'internal';

/** The chart handle seen as the core schema (a superset), for the audit append. */
export const asCore = (db: Kysely<store.ChartDb>): Kysely<CoreDb> => db as unknown as Kysely<CoreDb>;

/** A planned audited read: facts are checked; `fetch` reads with the audit entry; `reveal` decrypts. */
export interface ReadPlan<T> {
  readonly query: Omit<store.AuditedQuery, 'practiceId' | 'actorId'>;
  readonly reveal: (rows: store.AuditedRow[], keys: CallKeys) => T;
}

/**
 * The orchestration every gate call goes through: authorize, act, audit in the same transaction,
 * and only then decrypt. A denied or failed call is audited in its own transaction (or, inside a
 * batch, by the batch) and returns nothing. Exactly one audit entry per call.
 */
export class GateCore {
  readonly db: Kysely<store.ChartDb>;
  readonly keyring: Keyring;
  readonly clock: () => Date;
  readonly inBatch: boolean;

  /** The policy; `interimDecide` only as the benchmark's baseline. */
  readonly policy: typeof decide;
  /** Benchmark baseline: the interim policy's facts (care-team membership only). */
  readonly interim: boolean;
  readonly blobs: BlobStore | undefined;

  constructor(options: {
    db: Kysely<store.ChartDb>;
    keyring: Keyring;
    clock: () => Date;
    inBatch: boolean;
    interim?: boolean;
    blobs?: BlobStore;
  }) {
    this.interim = options.interim ?? false;
    this.blobs = options.blobs;
    this.policy = this.interim ? interimDecide : decide;
    this.db = options.db;
    this.keyring = options.keyring;
    this.clock = options.clock;
    this.inBatch = options.inBatch;
  }

  /** A call that writes: one explicit transaction for the work and its audit entry. */
  async call<T>(
    ctx: AccessContext,
    target: Target,
    work: (tx: store.Tx, t: Target, keys: CallKeys) => Promise<() => T>,
  ): Promise<T> {
    const t: Target = { ...target };
    const keys = new CallKeys(this.keyring);
    try {
      const body = async (tx: store.Tx) => {
        const reveal = await work(tx, t, keys);
        await append(asCore(tx), auditCtx(ctx, t), { ...t, outcome: 'success' }, this.clock());
        return reveal();
      };
      // Inside a batch the batch's transaction is used, and the batch audits a failure once.
      return this.inBatch ? await body(this.db) : await this.db.transaction().execute(body);
    } catch (e) {
      throw (await this.#failed(ctx, t, e)).error;
    } finally {
      keys.dispose();
    }
  }

  /**
   * A call with a slow part outside the transaction (a file streaming in): `prepare` decides and
   * does it, `work` writes the rows in one transaction with the audit entry; if anything fails
   * after `prepare`, `undo` removes what it made. Still exactly one audit entry per call.
   */
  async prepared<P, T>(
    ctx: AccessContext,
    target: Target,
    prepare: (db: store.Tx, t: Target, keys: CallKeys) => Promise<P>,
    work: (tx: store.Tx, t: Target, prepared: P, keys: CallKeys) => Promise<() => T>,
    undo: (prepared: P) => Promise<unknown>,
  ): Promise<T> {
    if (this.inBatch) {
      throw new Error('a prepared call cannot run inside a batch');
    }
    const t: Target = { ...target };
    const keys = new CallKeys(this.keyring);
    let made: { p: P } | undefined;
    try {
      const p = await prepare(this.db, t, keys);
      made = { p };
      return await this.db.transaction().execute(async (tx) => {
        const reveal = await work(tx, t, p, keys);
        await append(asCore(tx), auditCtx(ctx, t), { ...t, outcome: 'success' }, this.clock());
        return reveal();
      });
    } catch (e) {
      if (made) {
        await undo(made.p).catch(() => undefined);
      }
      throw (await this.#failed(ctx, t, e)).error;
    } finally {
      keys.dispose();
    }
  }

  /**
   * A call that reads: facts first (no health data), then one statement that inserts the audit
   * entry and reads the rows (one transaction, one round trip), then decryption. The plaintext
   * exists only after the audit entry has committed.
   */
  async read<T>(
    ctx: AccessContext,
    target: Target,
    plan: (db: store.Tx, t: Target) => Promise<ReadPlan<T>>,
  ): Promise<T> {
    const t: Target = { ...target };
    const keys = new CallKeys(this.keyring);
    try {
      const p = await plan(this.db, t);
      const rows = await store.auditedRead(
        this.db,
        auditRow(auditCtx(ctx, t), { ...t, outcome: 'success' }, this.clock()),
        { ...p.query, practiceId: ctx.practiceId, actorId: ctx.actor.id },
      );
      try {
        return p.reveal(rows, keys);
      } catch (e) {
        // The read is already audited as a success; tampered data adds an error entry so the
        // privacy officer sees it (the one case with two entries for one call).
        throw await this.#failed(ctx, t, e);
      }
    } catch (e) {
      throw e instanceof Failure ? e.error : (await this.#failed(ctx, t, e)).error;
    } finally {
      keys.dispose();
    }
  }

  /** Audits a failed call in its own transaction and returns what to throw. */
  async #failed(ctx: AccessContext, t: Target, e: unknown): Promise<Failure> {
    const denied = e instanceof Denied;
    const toThrow = denied ? notFound(t.resourceType === 'chart' ? 'patient' : t.resourceType) : e;
    if (this.inBatch) {
      return new Failure(e);
    }
    try {
      await append(
        asCore(this.db),
        auditCtx(ctx, t),
        { ...t, outcome: denied ? 'denied' : 'error', reason: failureReason(e) },
        this.clock(),
      );
    } catch (auditError) {
      // The audit store itself failed (possibly why the call failed). Nothing was returned and
      // nothing written; report the original error unless it was an expected one.
      return new Failure(denied || isCustosError(e) ? auditError : e);
    }
    return new Failure(toThrow);
  }

  /**
   * Asks the policy; a denial throws (and becomes "not found"). An allow that relies on
   * break-the-glass, overrides a consent directive or touches a restricted patient says so in
   * the call's audit entry.
   */
  decide(
    ctx: AccessContext,
    t: Target,
    action: Action,
    resource: Resource,
    patient: PatientFacts | null,
  ): Allow {
    const d = this.policy(this.subject(ctx), action, resource, { patient });
    if (!d.allow) {
      throw new Denied(d.reason);
    }
    annotate(t, d);
    return d;
  }

  /** The policy's view of the caller (cached per context object: contexts are frozen). */
  subject(ctx: AccessContext): Subject {
    let s = subjects.get(ctx);
    if (!s) {
      s = subjectOf(ctx);
      subjects.set(ctx, s);
    }
    return s;
  }

  /** Decides about one patient from facts only; the audit target learns its pseudonym. */
  async patientFacts(
    db: store.Tx,
    ctx: AccessContext,
    t: Target,
    patientId: string,
    action: Action,
    resource: Resource,
  ): Promise<PatientAccess> {
    const { id, link, facts, mergedInto } = await this.loadPatient(db, ctx, t, patientId);
    const decision = this.decide(ctx, t, action, resource, facts);
    if (action === 'write' && mergedInto) {
      // Decided first: only someone who may write to this patient learns that it was merged.
      throw new CustosError(
        'CUSTOS_ERR_CONFLICT',
        'this patient was merged into another: write to that patient, or undo the merge',
      );
    }
    return { id, link, facts, decision };
  }

  /** Loads a patient's facts without deciding (the caller decides, possibly more than once). */
  async loadPatient(
    db: store.Tx,
    ctx: AccessContext,
    t: Target,
    patientId: string,
  ): Promise<{ id: string; link: Link; facts: PatientFacts; mergedInto: string | null }> {
    if (!isUuid(patientId)) {
      t.resourceId = t.resourceId ?? patientId.slice(0, 64);
      throw new Denied('not-found');
    }
    const f = await (this.interim ? store.loadInterimFacts : store.loadPatientFacts)(db, {
      practiceId: ctx.practiceId,
      patientId,
      actorId: ctx.actor.id,
      now: this.clock(),
      lock: db.isTransaction,
    });
    if (!f) {
      t.resourceId = t.resourceId ?? patientId;
      throw new Denied('not-found');
    }
    const link = this.link(f.link, f.id);
    // The entry names the patient by pseudonym only, never by id.
    t.patientPseudonym = link.pseudonym;
    if (f.namesake && ctx.actor.kind === 'user') {
      t.detail = { ...(t.detail ?? {}), namesake: true };
    }
    return { id: f.id, link, facts: this.factsOf(ctx, f), mergedInto: f.merged_into ?? null };
  }

  /** Policy facts from a facts row (consent directives are decrypted here; no health data). */
  factsOf(ctx: AccessContext, f: store.PatientFactsRow): PatientFacts {
    return {
      restricted: f.restricted,
      onTeam: f.on_team,
      breakGlass: f.grant_id,
      consent: f.consent ? this.openConsent(f.id, f.consent_version ?? 0, f.consent) : null,
      self: ctx.actor.kind === 'patient' && ctx.actor.id === f.id,
    };
  }

  openConsent(patientId: string, version: number, blob: Buffer): Consent {
    return JSON.parse(this.keyring.openLink(consentAt(patientId, version), blob).toString('utf8')) as Consent;
  }

  /** The current identity row of a patient the caller may write to (update paths). */
  async patientHead(
    tx: store.Tx,
    ctx: AccessContext,
    t: Target,
    patientId: string,
  ): Promise<store.PatientHead> {
    const p = await this.loadPatient(tx, ctx, t, patientId);
    for (const section of IDENTITY_SECTIONS) {
      this.decide(ctx, t, 'write', { kind: 'section', section }, p.facts);
    }
    const [head] = await store.loadPatientHeads(tx, {
      practiceId: ctx.practiceId,
      patientIds: [patientId],
      actorId: ctx.actor.id,
      now: this.clock(),
    });
    if (!head) {
      throw new Denied('not-found');
    }
    return head;
  }

  /** Decides about one record through its patient (pseudonym -> keyed index -> link). */
  async recordFacts(db: store.Tx, ctx: AccessContext, t: Target, recordId: string, action: Action) {
    if (!isUuid(recordId)) {
      t.resourceId = recordId.slice(0, 64);
      throw new Denied('not-found');
    }
    const head = await store.loadRecordHead(db, {
      practiceId: ctx.practiceId,
      recordId,
      actorId: ctx.actor.id,
    });
    if (!head) {
      throw new Denied('not-found');
    }
    t.patientPseudonym = head.pseudonym;
    const patientId = await store.patientIdForPseudonymIndex(
      db,
      ctx.practiceId,
      this.keyring.pseudonymIndex(head.pseudonym),
    );
    if (!patientId) {
      throw new Denied('not-found');
    }
    const p = await this.loadPatient(db, ctx, { ...t }, patientId);
    const record = recordFactsOf(head);
    const decision = this.decide(ctx, t, action, { kind: 'record', record }, p.facts);
    if (record.sensitivity !== 'normal' && record.authorId !== ctx.actor.id) {
      // Someone else's restricted or psychotherapy record: listed by the anomaly report.
      t.detail = { ...(t.detail ?? {}), sensitivity: record.sensitivity };
    }
    return { ...head, link: p.link, patientId: p.id, facts: p.facts, record, decision };
  }

  /** Advances `current_version` only if it still equals `expected` (optimistic concurrency). */
  async bumpVersion(
    tx: store.Tx,
    table: 'patients' | 'records',
    id: string,
    expected: number,
  ): Promise<number> {
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
      throw new CustosError(
        'CUSTOS_ERR_VERSION_CONFLICT',
        `${table === 'patients' ? 'patient' : 'record'} was changed since version ${expected}`,
      );
    }
    return row.current_version;
  }

  /**
   * Writes a new clinical record (head row and version 1, the body sealed with the patient's
   * clinical key under the record's binding). The one place records are born; callers decide first.
   */
  async insertRecord(
    tx: store.Tx,
    ctx: AccessContext,
    keys: CallKeys,
    r: {
      id: string;
      link: Link;
      kind: RecordKind;
      sensitivity: Sensitivity;
      categories: readonly string[];
      authorId: string;
      body: unknown;
      now: Date;
      signed?: { by: string } | undefined;
      amends?: string | undefined;
    },
  ): Promise<void> {
    const keyId = r.link.clinicalKeyId;
    const wrapped = await this.wrappedKey(tx, keyId);
    await tx
      .insertInto('records')
      .values({
        id: r.id,
        practice_id: ctx.practiceId,
        pseudonym: r.link.pseudonym,
        kind: r.kind,
        sensitivity: r.sensitivity,
        categories: [...r.categories],
        author_id: r.authorId,
        status: 'active',
        current_version: 1,
        created_at: r.now,
        updated_at: r.now,
        ...(r.signed ? { signed_at: r.now, signed_by: r.signed.by } : {}),
        ...(r.amends ? { amends: r.amends } : {}),
      })
      .execute();
    await tx
      .insertInto('record_versions')
      .values({
        record_id: r.id,
        practice_id: ctx.practiceId,
        version: 1,
        body: sealJson(keys.key(keyId, wrapped), keyId, recordBodyAt(r.id, 1), r.body),
        created_at: r.now,
        created_by: ctx.actor.id,
      })
      .execute();
  }

  async wrappedKey(tx: store.Tx, keyId: string): Promise<Buffer> {
    const row = await tx.selectFrom('data_keys').select('wrapped').where('id', '=', keyId).executeTakeFirst();
    if (!row) {
      throw new CustosError('CUSTOS_ERR_INTEGRITY', `data key ${keyId} is missing`);
    }
    return row.wrapped;
  }

  link(blob: Buffer | undefined, patientId: string): Link {
    if (!blob) {
      throw new CustosError('CUSTOS_ERR_INTEGRITY', `patient link missing (row ${patientId})`);
    }
    return JSON.parse(this.keyring.openLink(linkAt(patientId), blob).toString('utf8')) as Link;
  }

  indexRows(identity: PatientIdentity) {
    return indexTerms(identity).map((x) => ({
      kind: x.kind,
      hash: this.keyring.blindIndex(x.kind, x.value),
    }));
  }
}

const subjects = new WeakMap<AccessContext, Subject>();

export const consentAt = (patientId: string, version: number) => ({
  table: 'patient_consents',
  column: 'body',
  row: patientId,
  version,
});

/** Records in the audit entry what an allow relied on (ids and flags only). */
function annotate(t: Target, d: Allow): void {
  if (d.grantId === null && !d.consentOverride && !d.restricted) {
    return;
  }
  const extra: Record<string, string | boolean> = {};
  if (d.grantId !== null) {
    extra.breakGlass = d.grantId;
    t.purpose = 'emergency';
  }
  if (d.consentOverride) {
    extra.consentOverride = true;
  }
  if (d.restricted) {
    extra.restrictedPatient = true;
  }
  t.detail = { ...(t.detail ?? {}), ...extra };
}

/** Policy facts of a record from its head row or an audited row. */
export function recordFactsOf(r: {
  kind: string | null;
  sensitivity: string | null;
  author_id: string | null;
  categories: string[] | null;
  released_at?: Date | null;
  released?: boolean | null;
  shared: boolean | null;
}): RecordFacts {
  return {
    section: r.kind as RecordFacts['section'],
    sensitivity: (r.sensitivity ?? 'normal') as PolicySensitivity,
    authorId: r.author_id ?? '',
    sharedWithSubject: r.shared ?? false,
    categories: r.categories ?? [],
    released: r.released ?? (r.released_at !== undefined && r.released_at !== null),
  };
}

/** The identity fields a view shows (demographics and contact sections), absent otherwise. */
export function projectIdentity(identity: PatientIdentity, view: View): PatientIdentity {
  const d = view.demographics;
  const c = view.contact;
  if (d === ALL && c === ALL) {
    return identity;
  }
  const fields: string[] = [];
  for (const [section, f] of [
    ['demographics', d],
    ['contact', c],
  ] as const) {
    if (f !== undefined) {
      fields.push(...(f === ALL ? IDENTITY_FIELDS[section] : (f as readonly string[])));
    }
  }
  return project(identity, fields) as PatientIdentity;
}

/** A record with only the body fields the subject may see. */
export function projectRecord(r: ClinicalRecord, fields: Fields): ClinicalRecord {
  return fields === ALL ? r : { ...r, body: project(r.body as object, fields) as ClinicalRecord['body'] };
}

/**
 * Decrypts the record rows of an audited read that the subject may see, each with only its
 * visible fields; the others are never decrypted. The policy decides per record (sensitivity,
 * author, shares, consent categories, release).
 */
export function visibleRecords(
  g: GateCore,
  ctx: AccessContext,
  rows: readonly store.AuditedRow[],
  facts: PatientFacts,
  action: 'read' | 'export',
  keys: CallKeys,
  /** Stop after this many visible records (nothing beyond is decrypted). */
  atMost = Number.POSITIVE_INFINITY,
): ClinicalRecord[] {
  const subject = g.subject(ctx);
  const wk = wrappedKeys(rows);
  const out: ClinicalRecord[] = [];
  for (const r of rows) {
    if (r.part !== 'record') {
      continue;
    }
    if (out.length >= atMost) {
      break;
    }
    const record = recordFactsOf(r);
    const d = g.policy(subject, action, { kind: 'record', record }, { patient: facts });
    if (!d.allow) {
      continue;
    }
    const fields = d.view[record.section];
    if (fields !== undefined) {
      out.push(projectRecord(openRecordRow(keys, wk, r), fields));
    }
  }
  return out;
}

/** Wraps what a failed call throws, so the outer handler does not audit it twice. */
class Failure {
  constructor(readonly error: unknown) {}
}

export function openPatient(keys: CallKeys, head: store.PatientHead): Patient {
  return {
    id: head.id,
    version: head.version,
    active: head.active,
    createdAt: head.createdAt,
    updatedAt: head.updatedAt,
    identity: keys.openJson<PatientIdentity>(
      head.keyId,
      head.wrappedKey,
      patientBodyAt(head.id, head.version),
      head.body,
    ),
  };
}

/** The wrapped data keys an audited read fetched alongside its rows. */
export function wrappedKeys(rows: readonly store.AuditedRow[]): Map<string, Buffer> {
  return new Map(rows.filter((r) => r.part === 'key').map((r) => [r.id, r.body]));
}

export function openIdentityRow(
  keys: CallKeys,
  wk: ReadonlyMap<string, Buffer>,
  r: store.AuditedRow,
): Patient {
  return {
    id: r.id,
    version: r.version,
    active: r.active ?? true,
    ...(r.merged_into ? { mergedInto: r.merged_into } : {}),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    identity: keys.openWith<PatientIdentity>(wk, patientBodyAt(r.id, r.version), r.body),
  };
}

export function openRecordRow(
  keys: CallKeys,
  wk: ReadonlyMap<string, Buffer>,
  r: store.AuditedRow,
): ClinicalRecord {
  return {
    id: r.id,
    kind: r.kind as RecordKind,
    version: r.version,
    sensitivity: r.sensitivity as Sensitivity,
    authorId: r.author_id ?? '',
    status: r.status as ClinicalRecord['status'],
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    ...(r.kind === 'note'
      ? {
          signed: r.signed_at ? { by: r.signed_by ?? '', at: r.signed_at } : null,
          amends: r.amends,
          amendedBy: r.amended_by,
        }
      : {}),
    body: keys.openWith(wk, recordBodyAt(r.id, r.version), r.body),
  };
}

import type { Kysely } from 'kysely';
import type { AccessContext } from '../access/context.ts';
import {
  type ChartAction,
  type DenyReason,
  decide,
  type Facts,
  type ResourceType,
} from '../access/policy.ts';
import { append, auditRow } from '../audit/append.ts';
import type { AuditEvent } from '../audit/entry.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { CoreDb } from '../db/schema.ts';
import { CustosError, isCustosError, notFound, validationError } from '../errors.ts';
import * as store from './chart.store.ts';
import { CallKeys, type Link, linkAt, patientBodyAt, recordBodyAt } from './cipher.ts';
import type { ClinicalRecord, Patient, PatientIdentity, RecordKind, Sensitivity } from './model.ts';
import { indexTerms } from './search-terms.ts';

/** Thrown inside a gate call when the policy denies; becomes "not found" for the caller. */
export class Denied extends Error {
  constructor(readonly reason: DenyReason) {
    super(reason);
  }
}

/** What the audit entry of a call will say; the call fills in what it learns (pseudonym, detail). */
export interface Target {
  action: ChartAction;
  resourceType: ResourceType;
  resourceId?: string | null;
  patientPseudonym?: string | null;
  detail?: AuditEvent['detail'];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const failureReason = (e: unknown): string =>
  e instanceof Denied ? e.reason : isCustosError(e) ? e.code : 'internal';

/** The chart handle seen as the core schema (a superset), for the audit append. */
export const asCore = (db: Kysely<store.ChartDb>): Kysely<CoreDb> => db as unknown as Kysely<CoreDb>;

/** A planned audited read: facts are checked; `fetch` reads with the audit entry; `reveal` decrypts. */
export interface ReadPlan<T> {
  readonly query: Omit<store.AuditedQuery, 'practiceId'>;
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

  constructor(options: { db: Kysely<store.ChartDb>; keyring: Keyring; clock: () => Date; inBatch: boolean }) {
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
        await append(asCore(tx), ctx, { ...t, outcome: 'success' }, this.clock());
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
        auditRow(ctx, { ...t, outcome: 'success' }, this.clock()),
        {
          practiceId: ctx.practiceId,
          ...p.query,
        },
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
        ctx,
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

  authorize(ctx: AccessContext, t: Target, facts: Facts, action: ChartAction = t.action): void {
    const d = decide(ctx, action, t.resourceType, facts);
    if (!d.allow) {
      throw new Denied(d.reason);
    }
  }

  /** Decides about one patient from facts only; the audit target learns its pseudonym. */
  async patientFacts(
    db: store.Tx,
    ctx: AccessContext,
    t: Target,
    patientId: string,
  ): Promise<{ id: string; link: Link }> {
    if (!UUID.test(patientId)) {
      t.resourceId = t.resourceId ?? patientId.slice(0, 64);
      throw new Denied('not-found');
    }
    const f = await store.loadPatientFacts(db, {
      practiceId: ctx.practiceId,
      patientId,
      actorId: ctx.actor.id,
      now: this.clock(),
    });
    if (!f) {
      t.resourceId = t.resourceId ?? patientId;
      throw new Denied('not-found');
    }
    const link = this.link(f.link, f.id);
    t.patientPseudonym = link.pseudonym;
    this.authorize(ctx, t, { patientInPractice: true, onCareTeam: f.on_team });
    return { id: f.id, link };
  }

  /** The current identity row of a patient the caller may write to (update paths). */
  async patientHead(
    tx: store.Tx,
    ctx: AccessContext,
    t: Target,
    patientId: string,
  ): Promise<store.PatientHead> {
    await this.patientFacts(tx, ctx, t, patientId);
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
  async recordFacts(db: store.Tx, ctx: AccessContext, t: Target, recordId: string) {
    if (!UUID.test(recordId)) {
      t.resourceId = recordId.slice(0, 64);
      throw new Denied('not-found');
    }
    const head = await store.loadRecordHead(db, { practiceId: ctx.practiceId, recordId });
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
    const { link } = await this.patientFacts(db, ctx, { ...t }, patientId);
    return { ...head, link };
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
    body: keys.openWith(wk, recordBodyAt(r.id, r.version), r.body),
  };
}

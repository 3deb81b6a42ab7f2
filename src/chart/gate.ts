import type { Kysely } from 'kysely';
import type { AccessContext } from '../access/context.ts';
import { append } from '../audit/append.ts';
import type { AuditEvent } from '../audit/entry.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { CoreDb } from '../db/schema.ts';
import { notFound } from '../errors.ts';
import type { BlobStore } from '../files/blob-store.ts';
import * as access from './access.service.ts';
import type * as store from './chart.store.ts';
import * as files from './files.service.ts';
import { asCore, Denied, failureReason, GateCore, type Target } from './gate-core.ts';
import type { ClinicalRecord, NewRecord, Patient, RecordKind } from './model.ts';
import * as notes from './notes.service.ts';
import * as patients from './patients.service.ts';
import * as records from './records.service.ts';
import type { ChartTables } from './tables.ts';

export interface ChartOptions {
  readonly db: Kysely<CoreDb>;
  readonly keyring: Keyring;
  /** The only thing tests may fake. */
  readonly clock?: () => Date;
  /** The encrypted file store (documents' content); without it, files cannot be attached. */
  readonly blobs?: BlobStore;
  /**
   * Benchmarks only: the gate as it was with the interim policy (`src/access/interim.ts`) and
   * its smaller facts query, as the baseline the full policy is measured against.
   */
  readonly baseline?: 'interim-policy';
}

/**
 * The gate: the only way to create, read, update, list, search and see the history of health
 * data. Each call authorizes (src/access), does its reads and writes, appends its audit entry in
 * the same transaction and only then decrypts. A denied or failed call is audited in its own
 * transaction and returns nothing, and "not allowed" looks exactly like "not found".
 *
 * @example
 *   const { id } = await chart.createPatient(ctx, identity);
 *   const { patient, records } = await chart.readChart(ctx, id);
 */
export class Chart {
  readonly #core: GateCore;
  readonly #options: ChartOptions;

  constructor(options: ChartOptions, transaction?: Kysely<store.ChartDb>) {
    this.#options = options;
    this.#core = new GateCore({
      db: transaction ?? options.db.withTables<ChartTables>(),
      keyring: options.keyring,
      clock: options.clock ?? (() => new Date()),
      inBatch: transaction !== undefined,
      interim: options.baseline === 'interim-policy',
      ...(options.blobs ? { blobs: options.blobs } : {}),
    });
  }

  /**
   * Registers a patient; `careTeam` user ids join its care team from now on (a clinician or nurse
   * who registers a patient joins it too); `restricted` flags a staff member or public figure.
   */
  createPatient(
    ctx: AccessContext,
    identity: unknown,
    options: { careTeam?: readonly string[]; restricted?: boolean } = {},
  ) {
    return patients.createPatient(this.#core, ctx, identity, options);
  }

  /** The patient's current identity (demographics, contact details, identifiers). */
  async readPatient(ctx: AccessContext, patientId: string): Promise<Patient> {
    const [p] = await patients.readPatient(this.#core, ctx, patientId, false);
    if (!p) {
      throw notFound('patient');
    }
    return p;
  }

  /** Every identity version, oldest first. */
  patientHistory(ctx: AccessContext, patientId: string): Promise<Patient[]> {
    return patients.readPatient(this.#core, ctx, patientId, true);
  }

  /** Writes a new identity version; a stale `expectedVersion` fails with a conflict. */
  updatePatient(ctx: AccessContext, patientId: string, expectedVersion: number, identity: unknown) {
    return patients.updatePatient(this.#core, ctx, patientId, expectedVersion, identity);
  }

  /** Blind-index search; a user sees only their care-team patients. Terms never go in a URL. */
  searchPatients(ctx: AccessContext, query: unknown): Promise<Patient[]> {
    return patients.searchPatients(this.#core, ctx, query);
  }

  /** Adds a user to a patient's care team (a clinician on the team, or front desk at intake). */
  addCareTeamMember(
    ctx: AccessContext,
    patientId: string,
    userId: string,
    period: { startsAt?: Date; endsAt?: Date } = {},
  ) {
    return patients.addCareTeamMember(this.#core, ctx, patientId, userId, period);
  }

  /** Ends a user's care-team membership now (the history stays). */
  endCareTeamMember(ctx: AccessContext, patientId: string, userId: string) {
    return patients.endCareTeamMember(this.#core, ctx, patientId, userId);
  }

  /** Past and present care-team memberships of a patient. */
  listCareTeam(ctx: AccessContext, patientId: string) {
    return patients.listCareTeam(this.#core, ctx, patientId);
  }

  /** The patient's consent directives (version 0 and none when never recorded). */
  readConsent(ctx: AccessContext, patientId: string) {
    return access.readConsent(this.#core, ctx, patientId);
  }

  /** Replaces the consent directives; `expectedVersion` is the version read (0 for none). */
  setConsent(ctx: AccessContext, patientId: string, expectedVersion: number, directives: unknown) {
    return access.setConsent(this.#core, ctx, patientId, expectedVersion, directives);
  }

  /** Flags a patient restricted (explicit care-team membership needed for every role) or not. */
  setRestricted(ctx: AccessContext, patientId: string, restricted: boolean) {
    return access.setRestricted(this.#core, ctx, patientId, restricted);
  }

  /** The author shares a psychotherapy note with a colleague (read only), or stops sharing. */
  shareRecord(ctx: AccessContext, recordId: string, userId: string, shared = true) {
    return access.shareRecord(this.#core, ctx, recordId, userId, shared);
  }

  /** Releases a record to the patient portal, or withdraws it. */
  releaseRecord(ctx: AccessContext, recordId: string, released = true) {
    return access.releaseRecord(this.#core, ctx, recordId, released);
  }

  /** The author signs a draft note (after a re-authentication within 5 minutes); it is final then. */
  signNote(ctx: AccessContext, recordId: string, expectedVersion: number) {
    return notes.signNote(this.#core, ctx, recordId, expectedVersion);
  }

  /** Amends a signed note: a new signed note `{ reason, body }` linked to the original. */
  amendNote(ctx: AccessContext, recordId: string, amendment: unknown) {
    return notes.amendNote(this.#core, ctx, recordId, amendment);
  }

  /** Records a patient's request to amend a record (by the patient, or staff on their behalf). */
  requestAmendment(ctx: AccessContext, recordId: string, request: unknown) {
    return notes.requestAmendment(this.#core, ctx, recordId, request);
  }

  /** Accepts (naming the amendment) or denies (with a reason) an amendment request. */
  decideAmendment(ctx: AccessContext, requestId: string, decision: unknown) {
    return notes.decideAmendment(this.#core, ctx, requestId, decision);
  }

  /** A patient's amendment requests with their texts and decisions. */
  listAmendmentRequests(ctx: AccessContext, patientId: string) {
    return notes.listAmendmentRequests(this.#core, ctx, patientId);
  }

  /**
   * Stores a file (exam report, scan, letter, consent form) as a document record of the patient:
   * type decided from the content, encrypted with the patient's key while it streams in.
   */
  attachFile(ctx: AccessContext, patientId: string, input: files.AttachInput) {
    return files.attachFile(this.#core, ctx, patientId, input);
  }

  /** A document's metadata and its decrypted content as a stream (integrity checked to the end). */
  openFile(ctx: AccessContext, recordId: string) {
    return files.openFile(this.#core, ctx, recordId);
  }

  /** Emergency access to one patient for a limited time (the caller has re-authenticated). */
  requestBreakGlass(ctx: AccessContext, patientId: string, request: unknown) {
    return access.requestBreakGlass(this.#core, ctx, patientId, request);
  }

  createRecord<K extends RecordKind>(ctx: AccessContext, patientId: string, input: NewRecord<K>) {
    return records.createRecord(this.#core, ctx, patientId, input as NewRecord);
  }

  /** One clinical record, its current version. */
  async readRecord(ctx: AccessContext, recordId: string): Promise<ClinicalRecord> {
    const [r] = await records.readRecord(this.#core, ctx, recordId, false);
    if (!r) {
      throw notFound('record');
    }
    return r;
  }

  /** Every version of one record, oldest first. */
  recordHistory(ctx: AccessContext, recordId: string): Promise<ClinicalRecord[]> {
    return records.readRecord(this.#core, ctx, recordId, true);
  }

  /** Writes a new version (old ones stay readable); `status` marks entered-in-error instead of deleting. */
  updateRecord(
    ctx: AccessContext,
    recordId: string,
    input: { expectedVersion: number; body: unknown; status?: 'active' | 'entered-in-error' },
  ) {
    return records.updateRecord(this.#core, ctx, recordId, input);
  }

  /** A patient's records (optionally one kind), current versions, oldest first. */
  listRecords(ctx: AccessContext, patientId: string, kind?: RecordKind): Promise<ClinicalRecord[]> {
    return records.listRecords(this.#core, ctx, patientId, kind);
  }

  /** A patient's whole chart: identity plus every current clinical record, one audit entry. */
  readChart(ctx: AccessContext, patientId: string) {
    return records.readChart(this.#core, ctx, patientId, 'read');
  }

  /** The chart for export (right of access, `custos export`), audited as an export. */
  exportChart(ctx: AccessContext, patientId: string) {
    return records.readChart(this.#core, ctx, patientId, 'export');
  }

  /**
   * The pseudonym that audit entries use for a patient, for the access report ("who has seen my
   * record"). Decrypts only the link, never health data; audited as a report on that patient.
   */
  patientPseudonym(ctx: AccessContext, patientId: string): Promise<string> {
    return this.#core.call(ctx, { action: 'report', resourceType: 'patient' }, async (tx, t) => {
      const { link } = await this.#core.patientFacts(tx, ctx, t, patientId, 'report', { kind: 'patient' });
      return () => link.pseudonym;
    });
  }

  /**
   * Runs several gate calls in one transaction (one FHIR bundle is all or nothing). Each call
   * still writes its own audit entry; the batch adds one for itself, and if anything fails,
   * everything rolls back and one error entry is written.
   */
  async batch<T>(
    ctx: AccessContext,
    target: { action: 'import'; detail?: (result: T) => AuditEvent['detail'] },
    fn: (chart: Chart) => Promise<T>,
  ): Promise<T> {
    const core = this.#core;
    if (core.inBatch) {
      throw new Error('batches do not nest');
    }
    const t: Target = { action: target.action, resourceType: 'bundle' };
    try {
      return await core.db.transaction().execute(async (tx) => {
        core.decide(ctx, t, 'import', { kind: 'practice' }, null);
        const result = await fn(new Chart(this.#options, tx));
        await append(
          asCore(tx),
          ctx,
          { ...t, outcome: 'success', detail: target.detail?.(result) ?? null },
          core.clock(),
        );
        return result;
      });
    } catch (e) {
      const denied = e instanceof Denied;
      await append(
        asCore(core.db),
        ctx,
        { ...t, outcome: denied ? 'denied' : 'error', reason: failureReason(e) },
        core.clock(),
      );
      throw denied ? notFound('bundle') : e;
    }
  }
}

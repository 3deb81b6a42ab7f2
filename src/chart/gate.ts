import type { Kysely } from 'kysely';
import type { AccessContext } from '../access/context.ts';
import { append } from '../audit/append.ts';
import type { AuditEvent } from '../audit/entry.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { CoreDb } from '../db/schema.ts';
import { notFound } from '../errors.ts';
import type { BlobStore } from '../files/blob-store.ts';
import type { ScryptParams } from '../files/export-archive.ts';
import * as access from './access.service.ts';
import * as appointments from './appointments.service.ts';
import type * as store from './chart.store.ts';
import * as disclosures from './disclosures.service.ts';
import * as bulk from './export.service.ts';
import * as files from './files.service.ts';
import { asCore, Denied, failureReason, GateCore, type Target } from './gate-core.ts';
import * as merges from './merge.service.ts';
import * as messages from './messages.service.ts';
import type { ClinicalRecord, NewRecord, Patient, RecordKind } from './model.ts';
import * as notes from './notes.service.ts';
import * as patients from './patients.service.ts';
import * as records from './records.service.ts';
import * as reminders from './reminders.service.ts';
import * as schedule from './schedule.service.ts';
import type { ChartTables } from './tables.ts';
import * as waiting from './waiting-list.service.ts';

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

  /** Deactivates (with a reason code) or reactivates a patient; searches leave inactive patients out. */
  setPatientActive(
    ctx: AccessContext,
    patientId: string,
    change: { active: true } | { active: false; reason: patients.DeactivationReason },
  ) {
    return patients.setActive(this.#core, ctx, patientId, change);
  }

  /** The dossier's front page: identity and a summary of each clinical section the caller may see. */
  readDossier(ctx: AccessContext, patientId: string) {
    return records.readDossier(this.#core, ctx, patientId);
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

  /**
   * Merges a duplicate (`sourceId`) into `targetId`: its records, amendment requests and other
   * clinical rows move to the target re-sealed under the target's key, its care team joins the
   * target's, and it becomes inactive (`merged_into` names the target). Reversible with
   * `unmergePatients`.
   *
   * @example const { mergeId, moved } = await chart.mergePatients(ctx, duplicateId, keptId);
   */
  mergePatients(ctx: AccessContext, sourceId: string, targetId: string) {
    return merges.mergePatients(this.#core, ctx, sourceId, targetId);
  }

  /** Undoes a merge (once): what it moved goes back to the source, which is active again. */
  unmergePatients(ctx: AccessContext, mergeId: string) {
    return merges.unmergePatients(this.#core, ctx, mergeId);
  }

  /** The merges a patient took part in, as source or target, oldest first. */
  listMerges(ctx: AccessContext, patientId: string) {
    return merges.listMerges(this.#core, ctx, patientId);
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
   * Reads what a disclosure to a third party needs (e.g. a webhook's patient name) and records the
   * disclosure for the accounting (HIPAA 164.528), one audit entry; returns every field as it must
   * be sent.
   */
  recordDisclosure(ctx: AccessContext, patientId: string, input: disclosures.DisclosureInput) {
    return disclosures.recordDisclosure(this.#core, ctx, patientId, input);
  }

  /** A patient's accounting of disclosures (privacy officer; care team with the export grant). */
  listDisclosures(ctx: AccessContext, patientId: string) {
    return disclosures.listDisclosures(this.#core, ctx, patientId);
  }

  /**
   * Stores a file (exam report, scan, letter, consent form) as a document record of the patient:
   * type decided from the content, encrypted with the patient's key while it streams in.
   */
  attachFile(ctx: AccessContext, patientId: string, input: files.AttachInput) {
    return files.attachFile(this.#core, ctx, patientId, input);
  }

  /**
   * Lets `issue` record a download token for a document the caller may read, in the transaction
   * of the audit entry (`download-token`); denied like `openFile` otherwise.
   */
  authorizeDownload<T>(ctx: AccessContext, recordId: string, issue: (tx: Kysely<CoreDb>) => Promise<T>) {
    return files.authorizeDownload(this.#core, ctx, recordId, issue);
  }

  /** A document's metadata and its decrypted content as a stream (integrity checked to the end). */
  openFile(ctx: AccessContext, recordId: string) {
    return files.openFile(this.#core, ctx, recordId);
  }

  // --- secure messages (src/chart/messages.service.ts) ---

  /** Starts a thread with a patient `{subject, text}`: the care team, or the patient (portal). */
  startThread(ctx: AccessContext, patientId: string, input: unknown) {
    return messages.startThread(this.#core, ctx, patientId, input);
  }

  /** Posts `{text}` in an open thread; a closed thread is a conflict. */
  postMessage(ctx: AccessContext, threadId: string, input: unknown) {
    return messages.postMessage(this.#core, ctx, threadId, input);
  }

  /** A patient's threads, most recent activity first, `{limit?, before?}`. */
  listThreads(ctx: AccessContext, patientId: string, page: { limit?: number; before?: string } = {}) {
    return messages.listThreads(this.#core, ctx, patientId, page);
  }

  /** One thread and its messages, oldest first, `{limit?, after?}`; marks them read for the caller. */
  readThread(ctx: AccessContext, threadId: string, page: { limit?: number; after?: number } = {}) {
    return messages.readThread(this.#core, ctx, threadId, page);
  }

  /** Closes a thread (it stays readable). */
  closeThread(ctx: AccessContext, threadId: string) {
    return messages.closeThread(this.#core, ctx, threadId);
  }

  /** Threads with patient messages the caller has not read, across the patients they may reach. */
  messageInbox(ctx: AccessContext, page: { limit?: number; before?: string } = {}) {
    return messages.inbox(this.#core, ctx, page);
  }

  /** The patient's e-mail for a "new message" notice (only the address is returned), or null. */
  messageNoticeAddress(ctx: AccessContext, patientId: string) {
    return messages.noticeAddress(this.#core, ctx, patientId);
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

  /** One page of the patient's records (oldest first) and the cursor of the next page, or null. */
  listRecordsPage(
    ctx: AccessContext,
    patientId: string,
    options: { kind?: RecordKind; limit?: number; after?: string },
  ): Promise<{ records: ClinicalRecord[]; next: string | null }> {
    return records.listRecordsPage(this.#core, ctx, patientId, options);
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
   * Every active patient of the practice as one encrypted FHIR NDJSON archive, never with
   * psychotherapy notes: a privacy officer re-authenticated within 5 minutes, with a stated
   * purpose `{ purposeCode, purpose, passphrase }`. One audit entry (the patient count and the
   * export id) commits before any record is read; see src/chart/export.service.ts.
   *
   * @example
   *   const e = await chart.exportAll(ctx, { purposeCode: 'migration', purpose, passphrase });
   *   await pipeline(e.archive, fs.createWriteStream(`custos-export-${e.id}.cxa`));
   */
  exportAll(ctx: AccessContext, input: unknown, options: { kdf?: ScryptParams } = {}) {
    return bulk.exportAll(this.#core, ctx, input, options);
  }

  /** The bulk-export registry, newest first, with the stated purposes (privacy officer; audited). */
  listExports(ctx: AccessContext) {
    return bulk.listExports(this.#core, ctx);
  }

  // --- scheduling (src/chart/appointments.service.ts, schedule.service.ts, waiting-list.service.ts) ---

  /** A clinician's working hours (the clinician, the administrator, front desk). */
  readWorkingHours(ctx: AccessContext, clinicianId: string) {
    return schedule.readHours(this.#core, ctx, clinicianId);
  }

  /** Replaces a clinician's week of working hours `{ hours: [{ weekday, start, end, room? }] }`. */
  setWorkingHours(ctx: AccessContext, clinicianId: string, input: unknown) {
    return schedule.setHours(this.#core, ctx, clinicianId, input);
  }

  /** A clinician's free time (and slots) `{ clinicianId, from, to, slotMinutes? }`: no patient data. */
  availability(ctx: AccessContext, input: unknown) {
    return schedule.availability(this.#core, ctx, input);
  }

  /** Books an appointment `{ patientId, clinicianId, start, end | durationMinutes, room?, reason? }`. */
  bookAppointment(ctx: AccessContext, input: unknown) {
    return appointments.book(this.#core, ctx, input);
  }

  /** Books a weekly series (`count` or `until`), all or nothing; conflicts per occurrence. */
  bookSeries(ctx: AccessContext, input: unknown) {
    return appointments.bookSeries(this.#core, ctx, input);
  }

  /** Moves a booked appointment `{ expectedVersion, start, end | durationMinutes, … }` (412 when stale). */
  rescheduleAppointment(ctx: AccessContext, appointmentId: string, input: unknown) {
    return appointments.reschedule(this.#core, ctx, appointmentId, input);
  }

  /** Cancels a booked appointment `{ reasonCode, expectedVersion? }`. */
  cancelAppointment(ctx: AccessContext, appointmentId: string, input: unknown) {
    return appointments.cancel(this.#core, ctx, appointmentId, input);
  }

  /** Marks a booked appointment that has started a no-show. */
  markNoShow(ctx: AccessContext, appointmentId: string, input: unknown = {}) {
    return appointments.markNoShow(this.#core, ctx, appointmentId, input);
  }

  /** A patient's appointments, oldest first (the reason only for roles that read it). */
  listPatientAppointments(ctx: AccessContext, patientId: string, range: { from?: Date; to?: Date } = {}) {
    return appointments.listForPatient(this.#core, ctx, patientId, range);
  }

  /** A clinician's calendar `{ clinicianId?, from, to }`: patients as far as the caller may see them. */
  calendar(ctx: AccessContext, input: unknown) {
    return schedule.calendar(this.#core, ctx, input);
  }

  /** Puts a patient on the waiting list `{ patientId, clinicianId?, note?, preferred? }`. */
  addToWaitingList(ctx: AccessContext, input: unknown) {
    return waiting.addEntry(this.#core, ctx, input);
  }

  /** The waiting list (optionally one clinician's and "any"). */
  listWaitingList(ctx: AccessContext, clinicianId?: string) {
    return waiting.listWaiting(this.#core, ctx, clinicianId);
  }

  /** The waiting entries a freed slot `{ clinicianId, start, end }` suits. */
  matchWaitingList(ctx: AccessContext, input: unknown) {
    return waiting.matchWaiting(this.#core, ctx, input);
  }

  removeFromWaitingList(ctx: AccessContext, entryId: string) {
    return waiting.removeEntry(this.#core, ctx, entryId);
  }

  /** Books a freed slot for a waiting patient and closes the entry. */
  offerSlot(ctx: AccessContext, entryId: string, input: unknown) {
    return waiting.offerSlot(this.#core, ctx, entryId, input);
  }

  /** System actor: booked appointments due a reminder (ids only). */
  dueReminders(ctx: AccessContext, q: { now: Date; leadMs: number; limit?: number }) {
    return reminders.dueReminders(this.#core, ctx, q);
  }

  /** System actor: claims one due reminder and reads the patient's e-mail address. */
  claimReminder(ctx: AccessContext, appointmentId: string, q: { now: Date; leadMs: number }) {
    return reminders.claimReminder(this.#core, ctx, appointmentId, q);
  }

  /** System actor: gives a claim back after a failed send. */
  releaseReminder(ctx: AccessContext, appointmentId: string) {
    return reminders.releaseReminder(this.#core, ctx, appointmentId);
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

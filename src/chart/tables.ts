import type { ColumnType } from 'kysely';

/**
 * The tables that hold health data: ciphertext, blind indexes and pseudonyms.
 * Private to src/chart (DESIGN.md invariant 1); `test/invariants/one-way-in.test.ts` and the lint
 * rule `noRestrictedImports` fail when any other module imports this file or a chart store.
 */
export type ChartTables = {
  /**
   * The bulk-export registry (src/chart/export.service.ts): who exported the practice, why (a
   * purpose code, and the stated purpose sealed under the key-encryption key), how many
   * patients, and the SHA-256 of the encrypted archive once it is complete.
   */
  exports: {
    id: string;
    practice_id: string;
    requested_by: string;
    purpose_code: string;
    purpose: Buffer;
    status: string;
    patient_count: number;
    exported_patients: number | null;
    exported_records: number | null;
    archive_bytes: ColumnType<string | null, number | null | undefined, number | null>;
    sha256: string | null;
    created_at: Date;
    finished_at: Date | null;
  };
  /**
   * Appointments (migration 012): a patient (by pseudonym) sees a clinician at a time, which is
   * health data; the reason for the visit sealed with the patient's key. A trigger refuses double
   * booking of a clinician or a room (src/db/migrations/012_scheduling.ts).
   */
  appointments: {
    id: string;
    practice_id: string;
    pseudonym: string;
    clinician_id: string;
    room: string | null;
    starts_at: Date;
    ends_at: Date;
    status: string;
    series_id: string | null;
    version: number;
    reason: Buffer | null;
    cancel_code: string | null;
    reminder_sent_at: Date | null;
    created_at: Date;
    created_by: string;
    updated_at: Date;
    updated_by: string;
  };
  /** Clinicians' working hours (migration 012): local times in the practice's zone; no patient data. */
  working_hours: {
    id: string;
    practice_id: string;
    clinician_id: string;
    weekday: number;
    starts: string;
    ends: string;
    room: string | null;
    updated_at: Date;
    updated_by: string;
  };
  /** The waiting list (migration 012): a patient (pseudonym) waiting for a slot; the note sealed. */
  waiting_list_entries: {
    id: string;
    practice_id: string;
    pseudonym: string;
    clinician_id: string | null;
    note: Buffer | null;
    preferred: ColumnType<Record<string, unknown>, string, string>;
    status: string;
    appointment_id: string | null;
    created_at: Date;
    created_by: string;
    updated_at: Date;
    updated_by: string;
  };
  /** A patient's requests to amend a record (ONC 170.315(d)(4)); texts sealed with the patient's key. */
  amendment_requests: {
    id: string;
    practice_id: string;
    record_id: string;
    pseudonym: string;
    request: Buffer;
    status: string;
    decision: Buffer | null;
    amendment_id: string | null;
    requested_by: string;
    requested_at: Date;
    decided_by: string | null;
    decided_at: Date | null;
  };
  /**
   * The accounting of disclosures (HIPAA 45 CFR 164.528, ONC 170.315(d)(11)): to whom, why and
   * when; what was sent (field names and values) sealed with the patient's key. Migration 014.
   */
  disclosures: {
    id: string;
    practice_id: string;
    pseudonym: string;
    /** The integration id for a webhook; null for another kind of recipient. */
    recipient_id: string | null;
    recipient_name: string;
    purpose: string;
    description: Buffer;
    delivery_id: string | null;
    disclosed_at: Date;
    disclosed_by: string;
  };
  /**
   * Secure message threads between staff and one patient (migration 013): the subject sealed with
   * the patient's key; who columns hold a user id, `system` or `patient`, never a patient id.
   */
  message_threads: {
    id: string;
    practice_id: string;
    pseudonym: string;
    subject: Buffer;
    created_by: string;
    created_at: Date;
    closed_at: Date | null;
    closed_by: string | null;
    last_message_at: Date;
    message_count: number;
    last_patient_seq: number;
    last_staff_seq: number;
  };
  /** Messages of a thread, numbered by `seq`; the text sealed with the patient's key. */
  messages: {
    id: string;
    practice_id: string;
    thread_id: string;
    seq: number;
    pseudonym: string;
    sender_kind: 'staff' | 'patient';
    sender_id: string;
    body: Buffer;
    created_at: Date;
  };
  /** How far each reader (a user id, or `patient`) has read a thread. */
  message_reads: {
    thread_id: string;
    practice_id: string;
    reader: string;
    last_read_seq: number;
    read_at: Date;
  };
  /** Colleagues an author shared a psychotherapy note with (45 CFR 164.508(a)(2)). */
  record_shares: {
    record_id: string;
    practice_id: string;
    user_id: string;
    shared_by: string;
    created_at: Date;
  };
  /** A patient's consent directives, sealed under the link key; one row per patient. */
  patient_consents: {
    patient_id: string;
    practice_id: string;
    version: number;
    body: Buffer;
    updated_at: Date;
    updated_by: string;
  };
  patients: {
    id: string;
    practice_id: string;
    current_version: number;
    active: boolean;
    /** Staff members, public figures: explicit care-team membership needed for every role. */
    restricted: ColumnType<boolean, boolean | undefined, boolean>;
    /** The patient this (inactive) duplicate was merged into (migration 016; src/chart/merge.service.ts). */
    merged_into: ColumnType<string | null, string | null | undefined, string | null>;
    created_at: Date;
    updated_at: Date;
  };
  /**
   * Merges of duplicate patients (migration 016): what moved (record ids and versions, rows of
   * other pseudonym tables, care-team members added to the target) is in `manifest`, sealed under
   * the link key, since a plaintext list of record ids beside two patient ids would undo the
   * pseudonyms. Undone at most once.
   */
  patient_merges: {
    id: string;
    practice_id: string;
    source_id: string;
    target_id: string;
    manifest: Buffer;
    merged_by: string;
    merged_at: Date;
    unmerged_by: string | null;
    unmerged_at: Date | null;
  };
  patient_versions: {
    patient_id: string;
    practice_id: string;
    version: number;
    /** Identity (names, birth date, contact details, identifiers), sealed under the patient's identity key reference. */
    body: Buffer;
    created_at: Date;
    created_by: string;
  };
  patient_links: {
    patient_id: string;
    practice_id: string;
    /** `{ pseudonym, clinicalKeyId, identityKeyId }` sealed under the link key. */
    link: Buffer;
    /** Keyed hash of the pseudonym, to find the patient from a clinical row. */
    pseudonym_index: Buffer;
  };
  patient_index: {
    practice_id: string;
    kind: string;
    hash: Buffer;
    patient_id: string;
  };
  records: {
    id: string;
    practice_id: string;
    pseudonym: string;
    kind: string;
    sensitivity: string;
    author_id: string;
    status: string;
    /** Consent categories (mental-health, substance-use, sexual-health); never codes. */
    categories: ColumnType<string[], string[] | undefined, string[]>;
    /** Set when a clinician releases the record to the patient portal. */
    released_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
    /** Notes: when and by whom signed (null while a draft). */
    signed_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
    signed_by: ColumnType<string | null, string | null | undefined, string | null>;
    /** An amendment names the note it amends; the amended note names its amendment. */
    amends: ColumnType<string | null, string | null | undefined, string | null>;
    amended_by: ColumnType<string | null, string | null | undefined, string | null>;
    current_version: number;
    created_at: Date;
    updated_at: Date;
  };
  record_versions: {
    record_id: string;
    practice_id: string;
    version: number;
    body: Buffer;
    created_at: Date;
    created_by: string;
  };
};

import type { ColumnType } from 'kysely';

/**
 * The tables that hold health data: ciphertext, blind indexes and pseudonyms.
 * Private to src/chart (DESIGN.md invariant 1); `test/invariants/one-way-in.test.ts` and the lint
 * rule `noRestrictedImports` fail when any other module imports this file or a chart store.
 */
export type ChartTables = {
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
    created_at: Date;
    updated_at: Date;
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

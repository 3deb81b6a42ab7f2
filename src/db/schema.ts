import type { ColumnType, Generated } from 'kysely';

/**
 * Tables that hold no health data. The tables that do are declared in `src/chart/tables.ts`
 * and only `src/chart` may import them (DESIGN.md invariant 1).
 */
export interface CoreTables {
  custos_meta: { key: string; value: string };
  practices: {
    id: string;
    name: string;
    created_at: Date;
    settings: ColumnType<unknown, string | undefined, string>;
  };
  /** Patient data keys, each wrapped by the key-encryption key. No column names the patient. */
  data_keys: {
    id: string;
    practice_id: string;
    kek_id: string;
    wrapped: Buffer;
    created_at: Date;
  };
  audit_entries: AuditEntryTable;
  audit_checkpoints: {
    number: string;
    tree_size: string;
    first_seq: string;
    last_seq: string;
    root: Buffer;
    prev_hash: Buffer;
    /** Rolled-back sequence numbers in (previous last_seq, last_seq], as JSON `[[from, to], ...]`. */
    gaps: string;
    created_at: Date;
    key_id: string;
    signature: Buffer;
    /** The leaf hashes this checkpoint adds, 32 bytes each, in sequence order. */
    leaves: Buffer;
    /** The Merkle frontier after this checkpoint (a cache for the sealer; verify recomputes). */
    frontier: string;
  };
  users: {
    id: string;
    practice_id: string;
    username: string;
    roles: string[];
    /** enrolling | active | disabled */
    status: string;
    password_hash: string | null;
    password_changed_at: Date | null;
    /** TOTP secret sealed under the key-encryption key's envelope (never plaintext). */
    totp_secret: Buffer | null;
    totp_last_step: string | null;
    recovery_hashes: ColumnType<string[], string[] | undefined, string[]>;
    failed_logins: ColumnType<number, number | undefined, number>;
    lockouts: ColumnType<number, number | undefined, number>;
    locked_until: Date | null;
    last_login_at: Date | null;
    /** Blind index of the staff member's family name (namesake check), or null. */
    family_index: ColumnType<Buffer | null, Buffer | null | undefined, Buffer | null>;
    created_at: Date;
  };
  enrollments: {
    token_hash: Buffer;
    user_id: string;
    practice_id: string;
    expires_at: Date;
    used_at: Date | null;
    created_at: Date;
  };
  sessions: {
    id_hash: Buffer;
    user_id: string;
    practice_id: string;
    /** 'mfa-pending' between password and second factor; 'full' after both. */
    kind: string;
    created_at: Date;
    last_seen_at: Date;
    absolute_expires_at: Date;
    reauth_at: Date | null;
    client_address: string | null;
    user_agent_hash: string | null;
    ended_at: Date | null;
    end_reason: string | null;
  };
  guard_events: { address: string; kind: string; subject_hash: string | null; at: Date };
  ip_blocks: {
    address: string;
    reason: string;
    blocked_at: Date;
    blocked_until: Date;
    lifted_at: Date | null;
    lifted_by: string | null;
  };
  webauthn_credentials: {
    id: string;
    user_id: string;
    practice_id: string;
    public_key: Buffer;
    counter: string;
    transports: string[];
    created_at: Date;
  };
  /** Care-team membership with its period; ending it sets `ends_at` and `ended_by`. */
  care_team: {
    practice_id: string;
    patient_id: string;
    user_id: string;
    starts_at: Date;
    ends_at: Date | null;
    added_by: string;
    ended_by: ColumnType<string | null, string | null | undefined, string | null>;
  };
  /** Emergency access grants (break-the-glass) and the privacy officer's review of each. */
  break_glass_grants: {
    id: string;
    practice_id: string;
    user_id: string;
    patient_id: string;
    /** emergency-treatment | urgent-care | other */
    reason_category: string;
    /** Free-text reason sealed under the key-encryption key (`sealSecret`). */
    reason: Buffer;
    starts_at: Date;
    expires_at: Date;
    ended_at: Date | null;
    /** appropriate | inappropriate, once reviewed */
    disposition: string | null;
    review_comment: Buffer | null;
    reviewed_by: string | null;
    reviewed_at: Date | null;
  };
  /** The privacy officer's access reviews (HIPAA 164.308(a)(4)); the latest row per user counts. */
  access_reviews: {
    id: string;
    practice_id: string;
    user_id: string;
    reviewer_id: string;
    /** certified | revoked */
    decision: string;
    comment: string | null;
    reviewed_at: Date;
  };
}

export interface AuditEntryTable {
  seq: Generated<string>;
  at: Date;
  practice_id: string;
  actor_kind: string;
  actor_id: string;
  role: string;
  on_behalf_of: string | null;
  action: string;
  resource_type: string;
  resource_id: string | null;
  patient_pseudonym: string | null;
  purpose: string;
  outcome: string;
  reason: string | null;
  client_address: string | null;
  user_agent_hash: string | null;
  session_id: string | null;
  request_id: string | null;
  detail: ColumnType<unknown, string | null, string | null> | null;
}

export type CoreDb = CoreTables;

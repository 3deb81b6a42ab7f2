import type { ColumnType, Generated } from 'kysely';

/**
 * Tables that hold no health data. The tables that do are declared in `src/chart/tables.ts`
 * and only `src/chart` may import them (DESIGN.md invariant 1).
 */
export interface CoreTables {
  custos_meta: { key: string; value: string };
  practices: { id: string; name: string; created_at: Date };
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
  /** Care-team membership: the interim policy's one fact. */
  care_team: {
    practice_id: string;
    patient_id: string;
    user_id: string;
    starts_at: Date;
    ends_at: Date | null;
    added_by: string;
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

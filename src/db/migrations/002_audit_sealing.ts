import { type Kysely, sql } from 'kysely';

/**
 * Sealing the audit trail (DESIGN.md "The audit trail", RFC 9162).
 *
 * - `seq` is assigned by a trigger that first makes sure the inserting transaction has a
 *   transaction id, then takes the next sequence value. That order lets the sealer compute a safe
 *   horizon from snapshots: every sequence value handed out before a point in time belongs to a
 *   transaction visible in a snapshot taken after it (see src/audit/horizon.ts).
 * - `audit_checkpoints`: signed tree heads chained by hash, with the leaf hashes they cover and
 *   the sequence numbers that were rolled back (permanent gaps). Append-only like the entries.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE audit_entries ALTER COLUMN seq DROP IDENTITY IF EXISTS;
    CREATE SEQUENCE audit_entries_seq AS bigint OWNED BY audit_entries.seq;
    SELECT setval('audit_entries_seq', COALESCE((SELECT max(seq) FROM audit_entries), 0) + 1, false);

    CREATE FUNCTION custos_audit_assign_seq() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      -- An xid before the sequence value: see src/audit/horizon.ts.
      PERFORM pg_current_xact_id();
      NEW.seq := nextval('audit_entries_seq');
      RETURN NEW;
    END $$;
    CREATE TRIGGER audit_entries_assign_seq BEFORE INSERT ON audit_entries
      FOR EACH ROW EXECUTE FUNCTION custos_audit_assign_seq();

    CREATE TABLE audit_checkpoints (
      number bigint PRIMARY KEY,
      tree_size bigint NOT NULL,
      first_seq bigint NOT NULL,
      last_seq bigint NOT NULL,
      root bytea NOT NULL,
      prev_hash bytea NOT NULL UNIQUE,
      gaps text NOT NULL,
      created_at timestamptz NOT NULL,
      key_id text NOT NULL,
      signature bytea NOT NULL,
      leaves bytea NOT NULL,
      frontier text NOT NULL
    );
    CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE OR DELETE ON audit_checkpoints
      FOR EACH ROW EXECUTE FUNCTION custos_audit_append_only();
    CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
      FOR EACH STATEMENT EXECUTE FUNCTION custos_audit_append_only();
  `.execute(db);
}

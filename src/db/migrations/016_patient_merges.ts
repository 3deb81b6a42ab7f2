import { type Kysely, sql } from 'kysely';

/**
 * Merging duplicate patients (issue 6 item 1), audited and reversible.
 *
 * - `patients.merged_into`: the patient a merged (inactive) duplicate now lives in, so a reader
 *   of the old id can be sent on. A merged patient is never active (checked here).
 * - `patient_merges`: one row per merge, with what moved (record ids and versions, amendment
 *   requests, care-team members added to the target) in `manifest`, sealed under the link key:
 *   a plaintext list of record ids beside two patient ids would link the pseudonymous clinical
 *   rows to their patient, which the pseudonyms exist to prevent. Undoing a merge fills
 *   `unmerged_by` and `unmerged_at`, once; at most one merge of a source is in force at a time.
 * - A trigger keeping all versions of a record under one data key (see below).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE patients ADD COLUMN merged_into uuid;
    ALTER TABLE patients
      ADD CONSTRAINT patients_merged_into FOREIGN KEY (merged_into, practice_id)
        REFERENCES patients (id, practice_id),
      ADD CONSTRAINT patients_merged_not_self CHECK (merged_into <> id),
      ADD CONSTRAINT patients_merged_inactive CHECK (merged_into IS NULL OR NOT active);

    CREATE TABLE patient_merges (
      id uuid PRIMARY KEY,
      practice_id uuid NOT NULL REFERENCES practices(id),
      source_id uuid NOT NULL,
      target_id uuid NOT NULL,
      manifest bytea NOT NULL,
      merged_by text NOT NULL,
      merged_at timestamptz NOT NULL,
      unmerged_by text,
      unmerged_at timestamptz,
      CONSTRAINT patient_merges_source FOREIGN KEY (source_id, practice_id) REFERENCES patients (id, practice_id),
      CONSTRAINT patient_merges_target FOREIGN KEY (target_id, practice_id) REFERENCES patients (id, practice_id),
      CONSTRAINT patient_merges_distinct CHECK (source_id <> target_id),
      CONSTRAINT patient_merges_undone CHECK ((unmerged_by IS NULL) = (unmerged_at IS NULL))
    );
    CREATE INDEX patient_merges_by_source ON patient_merges (source_id, merged_at);
    CREATE INDEX patient_merges_by_target ON patient_merges (target_id, merged_at);
    CREATE UNIQUE INDEX patient_merges_in_force ON patient_merges (source_id) WHERE unmerged_at IS NULL;
    SELECT custos_isolate('patient_merges');

    -- Every version of a record is sealed with the same data key (the key id is bytes 2..17 of
    -- the ciphertext). A merge re-seals all versions under the target's key; a writer that read
    -- the source's key before the merge and inserts a version after it is refused here, instead
    -- of leaving a version no one can open.
    CREATE FUNCTION custos_record_key_unchanged() RETURNS trigger LANGUAGE plpgsql AS $f$
    BEGIN
      IF EXISTS (SELECT 1 FROM record_versions v WHERE v.record_id = NEW.record_id AND v.version = 1
                 AND substring(v.body from 2 for 16) <> substring(NEW.body from 2 for 16)) THEN
        RAISE EXCEPTION 'a version of record % is sealed with another key than its first version', NEW.record_id
          USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END
    $f$;
    CREATE TRIGGER record_versions_same_key BEFORE INSERT ON record_versions
      FOR EACH ROW EXECUTE FUNCTION custos_record_key_unchanged();
  `.execute(db);
}

import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import { type KeyFile, Keyring, readKeyFile, writeKeyFile } from '../crypto/keyring.ts';
import type { CoreDb } from '../db/schema.ts';
import { CustosError } from '../errors.ts';

/**
 * Loads the key file and checks it against the key check values in the database, before
 * anything is written. A fresh database with no key file gets new keys; an initialized database
 * with a missing or different key file is refused.
 */
export async function loadKeys(
  db: Kysely<CoreDb>,
  options: { keyFile: string; initialized: boolean },
): Promise<{ keyring: Keyring; created: boolean }> {
  const stored = options.initialized ? await storedChecks(db) : new Map<string, string>();
  let file: KeyFile | undefined = readKeyFile(options.keyFile);
  let created = false;
  if (!file) {
    if (stored.size > 0) {
      throw new CustosError(
        'CUSTOS_ERR_KEY_MISSING',
        `no key file at ${options.keyFile}, but this database was initialized with one; restore it or point CUSTOS_KEY_FILE at it (nothing was written)`,
      );
    }
    file = Keyring.generate();
    writeKeyFile(options.keyFile, file);
    created = true;
  }
  const keyring = new Keyring(file);
  const mine = new Map(keyring.checks().map((c) => [c.name, c.value]));
  for (const [name, value] of stored) {
    if (mine.get(name) !== value) {
      throw new CustosError(
        'CUSTOS_ERR_KEY_MISMATCH',
        `the key file ${options.keyFile} does not belong to this database (${name.replace(/^kcv\./, '').replace(/\..*$/, '')} key check failed); nothing was written`,
      );
    }
  }
  return { keyring, created };
}

async function storedChecks(db: Kysely<CoreDb>): Promise<Map<string, string>> {
  const r = await sql<{
    key: string;
    value: string;
  }>`SELECT key, value FROM custos_meta WHERE key LIKE 'kcv.%'`.execute(db);
  return new Map(r.rows.map((row) => [row.key, row.value]));
}

/** Records the key check values of a keyring (idempotent). */
export async function storeChecks(db: Kysely<CoreDb>, keyring: Keyring): Promise<void> {
  for (const c of keyring.checks()) {
    await sql`INSERT INTO custos_meta (key, value) VALUES (${c.name}, ${c.value}) ON CONFLICT (key) DO NOTHING`.execute(
      db,
    );
  }
}

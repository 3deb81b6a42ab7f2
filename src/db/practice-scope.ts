import { sql, type Transaction } from 'kysely';
import { isUuid } from '../ids.ts';

/**
 * Practice isolation (migration 008): the application's statements run as the role `APP_ROLE`,
 * and row-level security shows them the rows whose `practice_id` equals the setting
 * `PRACTICE_SETTING`. An unset setting shows no practice's rows.
 */
export const APP_ROLE = 'custos_app';
export const PRACTICE_SETTING = 'custos.practice_id';

/** The practice id, checked: the policies cast the setting to uuid, and a bad one would fail every query. */
export function practiceIdOf(practiceId: string): string {
  if (!isUuid(practiceId)) {
    throw new TypeError('a practice id is a UUID');
  }
  return practiceId;
}

/**
 * Scopes the rest of a transaction to another practice (`SET LOCAL custos.practice_id`); the
 * connection's own practice returns at commit or rollback. For tests and a future multi-practice
 * administration: request handling never needs it, its practice is the server's.
 *
 * @example
 * await custos.database.db.transaction().execute(async (tx) => {
 *   await withPractice(tx, otherPracticeId);
 *   return tx.selectFrom('users').selectAll().execute(); // that practice's users only
 * });
 */
export async function withPractice<DB>(tx: Transaction<DB>, practiceId: string): Promise<void> {
  await sql`SELECT set_config(${PRACTICE_SETTING}, ${practiceIdOf(practiceId)}, true)`.execute(tx);
}

import type { Kysely } from 'kysely';
import type { CoreDb } from '../db/schema.ts';
import { isUuid } from '../ids.ts';

/**
 * Whether `id` is an active privacy officer of the practice, read from the account itself (not
 * from the role a context claims): the oversight services (access reviews, break-glass reviews)
 * ask this before anything else.
 */
export async function isActivePrivacyOfficer(
  db: Kysely<CoreDb>,
  practiceId: string,
  id: string,
): Promise<boolean> {
  if (!isUuid(id)) {
    return false;
  }
  const u = await db
    .selectFrom('users')
    .select(['roles', 'status'])
    .where('id', '=', id)
    .where('practice_id', '=', practiceId)
    .executeTakeFirst();
  return u?.status === 'active' && u.roles.includes('privacy_officer');
}

import { randomBytes, randomUUID } from 'node:crypto';
import { type Kysely, Migrator, sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { freshDatabase, skipReason, type TestDatabase } from '../../../test/support/db.ts';
import { connect, type Database, loadPglite } from '../database.ts';
import { migrate, migrations } from '../migrate.ts';
import type { CoreDb } from '../schema.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] 017_integration_approval.int.test.ts skipped: ${skip}`);
}

/** Applies the migrations before `name` only, as an older Custos would have. */
async function migrateBefore(db: Kysely<CoreDb>, name: string): Promise<void> {
  const older = Object.fromEntries(Object.entries(migrations).filter(([n]) => n < name));
  const { error } = await new Migrator({
    db,
    provider: { getMigrations: async () => older },
    migrationTableName: 'custos_migrations',
    migrationLockTableName: 'custos_migrations_lock',
  }).migrateToLatest();
  if (error) {
    throw error;
  }
}

describe.skipIf(skip)('migration 017: integration approval', () => {
  let testDb: TestDatabase | undefined;
  let database: Database | undefined;
  afterEach(async () => {
    await database?.close();
    await testDb?.drop();
  });

  it('makes an existing integration that reads patient identity wait for approval, and gives up its queue', async () => {
    testDb = await freshDatabase();
    if (testDb.engine === 'pglite') {
      await loadPglite();
    }
    database = connect(testDb.connection());
    const db = database.owner;
    await migrateBefore(db, '017_integration_approval');
    const practice = randomUUID();
    const now = new Date(Date.UTC(2026, 10, 23, 9, 0));
    await sql`INSERT INTO practices (id, name, created_at) VALUES (${practice}, 'Synthetic practice', ${now})`.execute(
      db,
    );
    const admin = randomUUID();
    const ids = { named: randomUUID(), slots: randomUUID() };
    const fields = { named: ['start', 'patientName'], slots: ['start', 'end', 'appointmentId'] };
    const queued: Record<string, string> = {};
    for (const k of ['named', 'slots'] as const) {
      await sql`INSERT INTO integrations (id, practice_id, name, url, secret, id_key, fields, events, purpose,
          created_by, created_at, updated_by, updated_at)
        VALUES (${ids[k]}, ${practice}, ${k}, 'https://hooks.example.com/x', ${randomBytes(60)}, ${randomBytes(60)},
          ${fields[k]}, ${['booked']}, 'Synthetic purpose', ${admin}, ${now}, ${admin}, ${now})`.execute(db);
      queued[k] = randomUUID();
      await sql`INSERT INTO webhook_deliveries (id, practice_id, integration_id, event, appointment_id, payload,
          next_attempt_at, created_at)
        VALUES (${queued[k]}, ${practice}, ${ids[k]}, 'booked', ${randomUUID()}, ${randomBytes(60)}, ${now}, ${now})`.execute(
        db,
      );
    }

    expect(await migrate(db)).toContain('017_integration_approval');

    const rows = await sql<{ id: string; approval: string; submitted_by: string | null; version: number }>`
      SELECT id, approval, submitted_by, version FROM integrations`.execute(db);
    expect(Object.fromEntries(rows.rows.map((r) => [r.id, [r.approval, r.submitted_by, r.version]]))).toEqual(
      {
        [ids.named]: ['pending-approval', admin, 1],
        [ids.slots]: ['not-required', null, 1],
      },
    );
    const deliveries = await sql<{ id: string; status: string | null; payload: boolean; given_up: boolean }>`
      SELECT id, last_status AS status, payload IS NOT NULL AS payload, gave_up_at IS NOT NULL AS given_up
        FROM webhook_deliveries`.execute(db);
    expect(Object.fromEntries(deliveries.rows.map((d) => [d.id, d]))).toEqual({
      [queued.named!]: { id: queued.named, status: 'approval-required', payload: false, given_up: true },
      [queued.slots!]: { id: queued.slots, status: null, payload: true, given_up: false },
    });
    // An approval without the configuration it covers cannot be stored.
    await expect(
      sql`UPDATE integrations SET approval = 'approved' WHERE id = ${ids.named}`.execute(db),
    ).rejects.toThrow();
  });
});

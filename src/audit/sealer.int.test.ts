import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { type Kysely, sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { engine, openTestCustos, skipReason, type TestCustos } from '../../test/support/db.ts';
import { systemContext } from '../access/context.ts';
import { openCustosOn } from '../app/custos.ts';
import type { CoreDb } from '../db/schema.ts';
import { append } from './append.ts';
import { SealerService, sealOnce } from './sealer.ts';
import { verifyTrail } from './verify.ts';

const skip =
  skipReason() ??
  (engine() === 'pglite'
    ? 'concurrency, leadership and crash tests need PostgreSQL (PGlite serves one connection)'
    : undefined);
if (skip) {
  console.warn(`[custos] sealer.int.test.ts skipped: ${skip}`);
}

class Rollback extends Error {}

const sealedSeqs = async (db: Kysely<CoreDb>) => {
  const max = Number(
    (await sql<{ m: string | null }>`SELECT max(last_seq) AS m FROM audit_checkpoints`.execute(db)).rows[0]
      ?.m ?? 0,
  );
  const rows = await db
    .selectFrom('audit_entries')
    .select('seq')
    .where('seq', '<=', String(max))
    .orderBy('seq')
    .execute();
  return { max, seqs: rows.map((r) => Number(r.seq)) };
};

describe.skipIf(skip)('the sealer on PostgreSQL', () => {
  let c: TestCustos | undefined;
  afterEach(async () => {
    await c?.cleanup();
    c = undefined;
  });

  it('seals every committed entry exactly once and no rolled-back one, with 16 writers and a running sealer', async () => {
    c = await openTestCustos();
    const custos = c;
    const writers = await openCustosOn(
      { engine: 'postgres', url: custos.testDb.url ?? '', poolSize: 16 },
      { keyFile: custos.keyFile },
    );
    const ctx = systemContext({
      practiceId: custos.practiceId,
      purpose: 'maintenance',
      requestId: randomUUID(),
    });
    const sealer = new SealerService({
      db: custos.database.db,
      keyring: custos.keyring,
      engine: 'postgres',
      intervalMs: 10,
    });
    sealer.start();
    const committed: string[] = [];
    const rolledBack: string[] = [];
    let appended = 0;
    try {
      await Promise.all(
        Array.from({ length: 16 }, async (_, w) => {
          let n = 0;
          while (appended < 20_000) {
            const ids = Array.from({ length: 1 + (n++ % 5) }, () => randomUUID());
            appended += ids.length;
            const rollback = Math.random() < 0.15;
            await writers.database.db
              .transaction()
              .execute(async (tx) => {
                for (const id of ids) {
                  await append(
                    tx,
                    { ...ctx, requestId: id },
                    { action: 'read', resourceType: 'patient', outcome: 'success', detail: { w } },
                    new Date(),
                  );
                }
                if (rollback) {
                  throw new Rollback();
                }
              })
              .then(
                () => committed.push(...ids),
                (e: unknown) => {
                  if (!(e instanceof Rollback)) {
                    throw e;
                  }
                  rolledBack.push(...ids);
                },
              );
          }
        }),
      );
    } finally {
      await sealer.stop();
      await writers.close();
    }
    await sealOnce({ db: custos.database.db, keyring: custos.keyring });
    const { max } = await sealedSeqs(custos.database.db);
    const sealed = await custos.database.db
      .selectFrom('audit_entries')
      .select('request_id')
      .where('seq', '<=', String(max))
      .execute();
    const sealedIds = sealed.map((r) => r.request_id);
    expect(new Set(sealedIds).size).toBe(sealedIds.length);
    expect(new Set(sealedIds)).toEqual(new Set(committed));
    expect(rolledBack.length).toBeGreaterThan(0);
    const checkpoints = Number(
      (await sql<{ n: string }>`SELECT count(*) AS n FROM audit_checkpoints`.execute(custos.database.db))
        .rows[0]?.n,
    );
    expect(checkpoints).toBeGreaterThan(3);
    const r = await verifyTrail(custos.database.db, {
      publicKey: custos.keyring.auditPublicKey,
      keyId: custos.keyring.auditKeyId,
    });
    expect(r).toMatchObject({ ok: true, entries: committed.length, unsealed: 0 });
  }, 180_000);

  it('lets one of two sealers lead, and the other take over when the leader dies', async () => {
    c = await openTestCustos();
    const custos = c;
    const url = custos.testDb.url ?? '';
    const a = await openCustosOn({ engine: 'postgres', url, poolSize: 3 }, { keyFile: custos.keyFile });
    const b = await openCustosOn({ engine: 'postgres', url, poolSize: 3 }, { keyFile: custos.keyFile });
    const sa = new SealerService({
      db: a.database.db,
      keyring: a.keyring,
      engine: 'postgres',
      intervalMs: 20,
    });
    const sb = new SealerService({
      db: b.database.db,
      keyring: b.keyring,
      engine: 'postgres',
      intervalMs: 20,
    });
    sa.start();
    sb.start();
    const ctx = systemContext({
      practiceId: custos.practiceId,
      purpose: 'maintenance',
      requestId: 'leader-test',
    });
    try {
      await until(() => sa.isLeader || sb.isLeader);
      await new Promise((r) => setTimeout(r, 200));
      expect([sa.isLeader, sb.isLeader].filter(Boolean)).toHaveLength(1);
      const [leader, follower, leaderCustos] = sa.isLeader ? [sa, sb, a] : [sb, sa, b];
      await append(
        custos.database.db,
        ctx,
        { action: 'read', resourceType: 'patient', outcome: 'success' },
        new Date(),
      );
      await until(async () => (await sealedSeqs(custos.database.db)).seqs.length === 1);
      // The leader dies: its connection is killed, PostgreSQL releases the session lock.
      await sql`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 1668641651 AND objid = 1701603698`.execute(
        custos.database.owner,
      );
      await leader.stop();
      void leaderCustos;
      await until(() => follower.isLeader, 10_000);
      await append(
        custos.database.db,
        ctx,
        { action: 'read', resourceType: 'patient', outcome: 'success' },
        new Date(),
      );
      await until(async () => (await sealedSeqs(custos.database.db)).seqs.length === 2);
    } finally {
      await sa.stop();
      await sb.stop();
      await a.close().catch(() => undefined);
      await b.close();
    }
    const r = await verifyTrail(custos.database.db, {
      publicKey: custos.keyring.auditPublicKey,
      keyId: custos.keyring.auditKeyId,
    });
    expect(r).toMatchObject({ ok: true, entries: 2, unsealed: 0 });
  }, 60_000);

  it('recovers from kill -9 while writers run: verify passes and every committed entry gets sealed', async () => {
    c = await openTestCustos();
    const custos = c;
    const script = path.resolve(import.meta.dirname, '../../test/support/audit-writer.ts');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', script, custos.testDb.url ?? '', custos.keyFile],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      child.on('exit', (code) => reject(new Error(`writer exited early (${code})`)));
    });
    // Kill it mid-flight: after its sealer has written at least one checkpoint, writers still running.
    await until(async () => (await sealedSeqs(custos.database.db)).max > 0, 30_000);
    await new Promise((r) => setTimeout(r, 500));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const before = await sealedSeqs(custos.database.db);
    expect(before.max).toBeGreaterThan(0);
    const r1 = await verifyTrail(custos.database.db, {
      publicKey: custos.keyring.auditPublicKey,
      keyId: custos.keyring.auditKeyId,
    });
    expect(r1.ok).toBe(true);
    await sealOnce({ db: custos.database.db, keyring: custos.keyring });
    const r2 = await verifyTrail(custos.database.db, {
      publicKey: custos.keyring.auditPublicKey,
      keyId: custos.keyring.auditKeyId,
    });
    const total = Number(
      (await sql<{ n: string }>`SELECT count(*) AS n FROM audit_entries`.execute(custos.database.db)).rows[0]
        ?.n,
    );
    expect(r2).toMatchObject({ ok: true, entries: total, unsealed: 0 });
    expect(total).toBeGreaterThanOrEqual(before.seqs.length);
  }, 60_000);
});

async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) {
      throw new Error('condition not reached in time');
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { type Kysely, sql } from 'kysely';
import { systemContext } from '../src/access/context.ts';
import { openCustosOn } from '../src/app/custos.ts';
import { SealerService, sealOnce } from '../src/audit/sealer.ts';
import type { CoreDb } from '../src/db/schema.ts';
import { createDatabase, keyFileIn, percentile, report, round, tempDir } from './lib.ts';

/**
 * Issue 3 benchmarks on PostgreSQL: sealer throughput, seal lag under a steady load of audited
 * reads, and `verify` over 1,000,000 entries (rate and peak RSS).
 */
const SEAL_ENTRIES = Number(process.env.BENCH_SEAL_ENTRIES ?? 200_000);
const VERIFY_ENTRIES = Number(process.env.BENCH_VERIFY_ENTRIES ?? 1_000_000);
const LAG_RATE = Number(process.env.BENCH_LAG_RATE ?? 2000);
const LAG_SECONDS = Number(process.env.BENCH_LAG_SECONDS ?? 10);

/** Bulk entries shaped like gate reads (the insert trigger assigns sequence numbers). */
async function bulkEntries(db: Kysely<CoreDb>, practiceId: string, n: number): Promise<void> {
  for (let done = 0; done < n; done += 100_000) {
    const k = Math.min(100_000, n - done);
    await sql`INSERT INTO audit_entries (at, practice_id, actor_kind, actor_id, role, action, resource_type, patient_pseudonym, purpose, outcome, client_address, session_id, request_id, detail)
      SELECT now(), ${practiceId}, 'user', 'user-' || (g % 50), 'clinician', 'read', 'chart', 'ps_' || md5(g::text), 'treatment', 'success', '127.0.0.1', 'sess-' || (g % 200), md5(g::text || 'r'), NULL
        FROM generate_series(1, ${k}) g`.execute(db);
  }
}

export async function run(): Promise<void> {
  const db = await createDatabase();
  const dir = tempDir('custos-bench-');
  const custos = await openCustosOn(
    { engine: 'postgres', url: db.url, poolSize: 12 },
    { keyFile: keyFileIn(dir) },
  );
  try {
    const kdb = custos.database.db;
    // 1. Sealer throughput: seal a backlog of entries.
    await bulkEntries(kdb, custos.practiceId, SEAL_ENTRIES);
    let t = performance.now();
    const sealed = await sealOnce({ db: kdb, keyring: custos.keyring });
    let seconds = (performance.now() - t) / 1000;
    report({
      bench: 'sealer-throughput',
      engine: 'postgres',
      entries: sealed.entries,
      checkpoints: sealed.checkpoints,
      seconds: round(seconds, 2),
      entriesPerSec: round(sealed.entries / seconds, 0),
      target: 20_000,
    });

    // 2. Seal lag: audited gate reads at a steady rate while the sealer runs (interval 100 ms).
    const ctx = systemContext({
      practiceId: custos.practiceId,
      purpose: 'treatment',
      requestId: randomUUID(),
    });
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) {
      ids.push(
        (
          await custos.chart.createPatient(ctx, {
            name: { given: ['Bench'], family: `Lag${i}` },
            birthDate: '1990-01-01',
            sex: 'unknown',
            identifiers: [],
          })
        ).id,
      );
    }
    await sealOnce({ db: kdb, keyring: custos.keyring });
    const startSeq = Number(
      (await sql<{ v: string }>`SELECT last_value AS v FROM audit_entries_seq`.execute(kdb)).rows[0]?.v,
    );
    const sealer = new SealerService({
      db: kdb,
      keyring: custos.keyring,
      engine: 'postgres',
      intervalMs: 100,
    });
    sealer.start();
    const interval = 1000 / LAG_RATE;
    const end = performance.now() + LAG_SECONDS * 1000;
    const inflight = new Set<Promise<unknown>>();
    let issued = 0;
    let next = performance.now();
    while (performance.now() < end) {
      // Open loop: issue on schedule whether or not earlier reads finished (bounded in-flight).
      while (next <= performance.now() && inflight.size < 64) {
        const p = custos.chart
          .readPatient(ctx, ids[issued++ % ids.length] ?? '')
          .finally(() => inflight.delete(p));
        inflight.add(p);
        next += interval;
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    await Promise.all(inflight);
    const achieved = issued / LAG_SECONDS;
    await new Promise((r) => setTimeout(r, 1500));
    await sealer.stop();
    const lag = await sql<{ lag_ms: number }>`
      SELECT extract(epoch FROM (c.created_at - e.at)) * 1000 AS lag_ms
        FROM audit_entries e JOIN audit_checkpoints c ON e.seq BETWEEN c.first_seq AND c.last_seq
       WHERE e.seq > ${startSeq}`.execute(kdb);
    const lags = lag.rows.map((r) => Number(r.lag_ms)).sort((a, b) => a - b);
    report({
      bench: 'seal-lag',
      engine: 'postgres',
      targetRate: LAG_RATE,
      achievedRate: round(achieved, 0),
      entries: lags.length,
      p50ms: round(percentile(lags, 50), 1),
      p99ms: round(percentile(lags, 99), 1),
      targetP99ms: 1000,
    });

    // 3. Verify over 1,000,000 entries.
    const have = Number(
      (await sql<{ n: string }>`SELECT count(*) AS n FROM audit_entries`.execute(kdb)).rows[0]?.n,
    );
    await bulkEntries(kdb, custos.practiceId, Math.max(0, VERIFY_ENTRIES - have));
    await sealOnce({ db: kdb, keyring: custos.keyring });
    // `custos audit verify` in its own process, as an auditor runs it: wall time and peak RSS
    // (GNU time's maximum resident set size).
    const { execFileSync } = await import('node:child_process');
    const timeOut = `${dir}/verify.time`;
    t = performance.now();
    const stdout = execFileSync(
      '/usr/bin/time',
      ['-f', '%M', '-o', timeOut, process.execPath, 'bin/custos.js', 'audit', 'verify'],
      {
        env: { PATH: process.env.PATH ?? '', DATABASE_URL: db.url, CUSTOS_DATA_DIR: dir },
        encoding: 'utf8',
      },
    );
    seconds = (performance.now() - t) / 1000;
    const entriesVerified = Number(/intact: (\d+) entries/.exec(stdout)?.[1]);
    if (!entriesVerified) {
      throw new Error(`verify failed: ${stdout}`);
    }
    const peakRssMiB = round(Number(fs.readFileSync(timeOut, 'utf8').trim().split('\n').pop()) / 1024, 1);
    report({
      bench: 'verify',
      engine: 'postgres',
      entries: entriesVerified,
      seconds: round(seconds, 2),
      entriesPerSec: round(entriesVerified / seconds, 0),
      target: 200_000,
      peakRssMiB,
      targetRssMiB: 200,
      note: 'whole custos process incl. startup',
    });
  } finally {
    await custos.close();
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

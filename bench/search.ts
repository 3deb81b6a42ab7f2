import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { sql } from 'kysely';
import { systemContext } from '../src/access/context.ts';
import { openCustosOn } from '../src/app/custos.ts';
import { loadPlan } from '../src/chart/load-plan.ts';
import type { PatientIdentity, PlannedPatient } from '../src/chart/model.ts';
import { generateDemoPatients } from '../src/demo/generate.ts';
import { createDatabase, keyFileIn, percentile, report, round, tempDir } from './lib.ts';

/**
 * Issue 2: search for one patient by family name + birth date among 100,000 patients on
 * PostgreSQL (p99 in ms; target under 5 ms). Patients are loaded through the gate, identity only
 * (search touches only the identity store and its blind indexes).
 */
const PATIENTS = Number(process.env.BENCH_SEARCH_PATIENTS ?? 100_000);
const SEARCHES = 2000;

export async function run(): Promise<void> {
  const db = await createDatabase();
  const dir = tempDir('custos-bench-');
  const custos = await openCustosOn({ engine: 'postgres', url: db.url }, { keyFile: keyFileIn(dir) });
  try {
    const ctx = systemContext({ practiceId: custos.practiceId, purpose: 'import', requestId: randomUUID() });
    const sample: PatientIdentity[] = [];
    let batch: PlannedPatient[] = [];
    const loadStart = performance.now();
    for (const p of generateDemoPatients({ count: PATIENTS, seed: 13 })) {
      batch.push({ fullUrl: p.fullUrl, identity: p.identity, records: [] });
      if (sample.length < SEARCHES && batch.length === 1) {
        sample.push(p.identity);
      }
      if (batch.length === 500) {
        await loadPlan(custos.chart, ctx, batch);
        batch = [];
      }
    }
    if (batch.length > 0) {
      await loadPlan(custos.chart, ctx, batch);
    }
    const loadSeconds = (performance.now() - loadStart) / 1000;
    await sql`ANALYZE`.execute(custos.database.owner);
    const latencies: number[] = [];
    let found = 0;
    for (let i = 0; i < SEARCHES; i++) {
      const who = sample[i % sample.length]!;
      const t = performance.now();
      const r = await custos.chart.searchPatients(ctx, { family: who.name.family, birthDate: who.birthDate });
      latencies.push(performance.now() - t);
      found += r.some((p) => p.identity.birthDate === who.birthDate) ? 1 : 0;
    }
    latencies.sort((a, b) => a - b);
    report({
      bench: 'search-family-birthdate',
      engine: 'postgres',
      patients: PATIENTS,
      searches: SEARCHES,
      found,
      p50ms: round(percentile(latencies, 50), 3),
      p99ms: round(percentile(latencies, 99), 3),
      targetP99ms: 5,
      loadSeconds: round(loadSeconds, 1),
    });
  } finally {
    await custos.close();
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

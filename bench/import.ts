import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { systemContext } from '../src/access/context.ts';
import { type Custos, openCustos, openCustosOn } from '../src/app/custos.ts';
import { loadPlan } from '../src/chart/load-plan.ts';
import type { PlannedPatient } from '../src/chart/model.ts';
import { loadConfig } from '../src/config/config.ts';
import { generateDemoPatients } from '../src/demo/generate.ts';
import { createDatabase, keyFileIn, report, round, tempDir, withPeakRss } from './lib.ts';

/**
 * Issue 2: import of 10,000 demo patients through the gate on each engine (patients/s, peak
 * RSS), in transactions of 100 patients as `custos demo` does.
 */
const PATIENTS = Number(process.env.BENCH_IMPORT_PATIENTS ?? 10_000);
const BATCH = 100;

async function load(custos: Custos): Promise<{ patients: number; records: number }> {
  const ctx = systemContext({ practiceId: custos.practiceId, purpose: 'import', requestId: randomUUID() });
  let batch: PlannedPatient[] = [];
  let patients = 0;
  let records = 0;
  for (const p of generateDemoPatients({ count: PATIENTS, seed: 11 })) {
    batch.push(p);
    records += p.records.length;
    if (batch.length === BATCH) {
      patients += (await loadPlan(custos.chart, ctx, batch)).length;
      batch = [];
    }
  }
  if (batch.length > 0) {
    patients += (await loadPlan(custos.chart, ctx, batch)).length;
  }
  return { patients, records };
}

async function measure(engine: 'postgres' | 'pglite', custos: Custos): Promise<void> {
  const start = performance.now();
  const { result, peakRssMiB } = await withPeakRss(() => load(custos));
  const seconds = (performance.now() - start) / 1000;
  report({
    bench: 'import-demo-patients',
    engine,
    patients: result.patients,
    records: result.records,
    seconds: round(seconds, 1),
    patientsPerSec: round(result.patients / seconds, 1),
    recordsPerSec: round(result.records / seconds, 1),
    peakRssMiB,
  });
}

export async function run(): Promise<void> {
  const db = await createDatabase();
  const dir = tempDir('custos-bench-');
  try {
    const pgCustos = await openCustosOn({ engine: 'postgres', url: db.url }, { keyFile: keyFileIn(dir) });
    try {
      await measure('postgres', pgCustos);
    } finally {
      await pgCustos.close();
      await db.drop();
    }
    const liteDir = path.join(dir, 'lite');
    const lite = await openCustos(loadConfig({ CUSTOS_DATA_DIR: liteDir }));
    try {
      await measure('pglite', lite);
    } finally {
      await lite.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

import fs from 'node:fs';
import { sql } from 'kysely';
import { openCustosOn } from '../src/app/custos.ts';
import { patientAccessReport } from '../src/audit/report.ts';
import { createDatabase, keyFileIn, percentile, report, round, tempDir } from './lib.ts';

/**
 * Issue 3: the access report for one patient among 10,000,000 audit entries on PostgreSQL
 * (target under 50 ms). Entries are shaped like gate traffic: 100,000 patients with about 100
 * entries each, and one search entry in 50 naming five patients in its detail.
 */
const ENTRIES = Number(process.env.BENCH_REPORT_ENTRIES ?? 10_000_000);
const PATIENTS = 100_000;
const RUNS = 300;

export async function run(): Promise<void> {
  const db = await createDatabase();
  const dir = tempDir('custos-bench-');
  const custos = await openCustosOn({ engine: 'postgres', url: db.url }, { keyFile: keyFileIn(dir) });
  try {
    const kdb = custos.database.db;
    const loadStart = performance.now();
    for (let done = 0; done < ENTRIES; done += 500_000) {
      const k = Math.min(500_000, ENTRIES - done);
      await sql`INSERT INTO audit_entries (at, practice_id, actor_kind, actor_id, role, action, resource_type, patient_pseudonym, purpose, outcome, client_address, session_id, request_id, detail)
        SELECT now() - make_interval(secs => (${ENTRIES} - (${done} + g)) / 50.0), ${custos.practiceId}, 'user', 'user-' || (g % 300), 'clinician',
               CASE WHEN g % 50 = 0 THEN 'search' ELSE 'read' END, 'chart',
               CASE WHEN g % 50 = 0 THEN NULL ELSE 'ps_' || ((${done} + g) % ${PATIENTS}) END,
               'treatment', 'success', '127.0.0.1', 'sess-' || (g % 1000), md5(g::text),
               CASE WHEN g % 50 = 0 THEN jsonb_build_object('count', 5, 'pseudonyms', jsonb_build_array(
                 'ps_' || ((${done} + g) % ${PATIENTS}), 'ps_' || ((${done} + g + 1) % ${PATIENTS}), 'ps_' || ((${done} + g + 2) % ${PATIENTS}),
                 'ps_' || ((${done} + g + 3) % ${PATIENTS}), 'ps_' || ((${done} + g + 4) % ${PATIENTS}))) END
          FROM generate_series(1, ${k}) g`.execute(kdb);
    }
    await sql`VACUUM ANALYZE audit_entries`.execute(custos.database.owner);
    const loadSeconds = (performance.now() - loadStart) / 1000;
    const latencies: number[] = [];
    let rows = 0;
    for (let i = 0; i < RUNS; i++) {
      const pseudonym = `ps_${(i * 7919) % PATIENTS}`;
      const t = performance.now();
      const r = await patientAccessReport(kdb, { pseudonym });
      latencies.push(performance.now() - t);
      rows += r.length;
    }
    latencies.sort((a, b) => a - b);
    report({
      bench: 'patient-access-report',
      engine: 'postgres',
      entries: ENTRIES,
      runs: RUNS,
      rowsPerReport: round(rows / RUNS, 1),
      p50ms: round(percentile(latencies, 50), 2),
      p99ms: round(percentile(latencies, 99), 2),
      targetMs: 50,
      loadSeconds: round(loadSeconds, 0),
    });
  } finally {
    await custos.close();
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

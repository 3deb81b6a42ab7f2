import fs from 'node:fs';
import { sql } from 'kysely';
import pg from 'pg';
import { accessContext, systemContext } from '../src/access/context.ts';
import { openCustosOn } from '../src/app/custos.ts';
import type { NewRecord } from '../src/chart/model.ts';
import { generateDemoPatients } from '../src/demo/generate.ts';
import { closedLoop, createDatabase, keyFileIn, report, round, tempDir } from './lib.ts';

/**
 * Issue 2 (a)/(b): the gate's whole-chart read (identity + 20 clinical rows: policy check,
 * audit insert, decryption, in one transaction) at 8 concurrent callers, against the same rows
 * read from a plaintext copy with plain SQL and no audit, on PostgreSQL, in one run.
 */
const PATIENTS = 200;
const ROWS = 20;
const CONCURRENCY = 8;
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 8000);

export async function run(): Promise<void> {
  const db = await createDatabase();
  const dir = tempDir('custos-bench-');
  const custos = await openCustosOn(
    { engine: 'postgres', url: db.url, poolSize: CONCURRENCY + 2 },
    { keyFile: keyFileIn(dir) },
  );
  const plain = new pg.Pool({ connectionString: db.url, max: CONCURRENCY + 2 });
  try {
    const sys = systemContext({ practiceId: custos.practiceId, purpose: 'import', requestId: 'bench' });
    const ids: string[] = [];
    // The plaintext baseline tables are created by the owner (the application role may not).
    await sql`CREATE TABLE plain_patients (id uuid PRIMARY KEY, identity jsonb NOT NULL)`.execute(
      custos.database.owner,
    );
    await sql`CREATE TABLE plain_records (id uuid PRIMARY KEY, patient_id uuid NOT NULL, kind text NOT NULL, version int NOT NULL, body jsonb NOT NULL)`.execute(
      custos.database.owner,
    );
    await sql`CREATE INDEX ON plain_records (patient_id)`.execute(custos.database.owner);
    for (const p of generateDemoPatients({ count: PATIENTS, seed: 7 })) {
      const { id } = await custos.chart.createPatient(sys, p.identity, { careTeam: ['bench-clinician'] });
      // Exactly 20 clinical rows per patient: the demo's own records, cycled.
      const records = p.records.filter((r) => r.encounterRef === undefined);
      for (let i = 0; i < ROWS; i++) {
        const r = records[i % records.length]!;
        await custos.chart.createRecord(sys, id, {
          kind: r.kind,
          body: r.body,
          sensitivity: r.sensitivity,
        } as NewRecord);
      }
      const chart = await custos.chart.readChart(sys, id);
      await plain.query('INSERT INTO plain_patients VALUES ($1, $2)', [
        id,
        JSON.stringify(chart.patient.identity),
      ]);
      for (const r of chart.records) {
        await plain.query('INSERT INTO plain_records VALUES ($1, $2, $3, $4, $5)', [
          r.id,
          id,
          r.kind,
          r.version,
          JSON.stringify(r.body),
        ]);
      }
      ids.push(id);
    }
    await sql`ANALYZE`.execute(custos.database.owner);
    const user = accessContext({
      actor: { kind: 'user', id: 'bench-clinician' },
      role: 'clinician',
      practiceId: custos.practiceId,
      purpose: 'treatment',
      sessionId: 'bench-session',
      clientAddress: '127.0.0.1',
      requestId: 'bench',
    });
    let n = 0;
    const pick = () => ids[n++ % ids.length]!;
    const gate = await closedLoop(
      async () => {
        const c = await custos.chart.readChart(user, pick());
        if (c.records.length !== ROWS) {
          throw new Error('wrong row count');
        }
      },
      { concurrency: CONCURRENCY, durationMs: DURATION_MS },
    );
    const baseline = await closedLoop(
      async () => {
        const id = pick();
        const p = await plain.query('SELECT id, identity FROM plain_patients WHERE id = $1', [id]);
        const r = await plain.query(
          'SELECT id, kind, version, body FROM plain_records WHERE patient_id = $1 ORDER BY id',
          [id],
        );
        if (p.rowCount !== 1 || r.rowCount !== ROWS) {
          throw new Error('wrong row count');
        }
      },
      { concurrency: CONCURRENCY, durationMs: DURATION_MS },
    );
    // Context: the same plaintext read with one audit-sized row inserted in the same statement,
    // i.e. the bare cost of a durable write per read, with no policy, keys or decryption.
    const floor = await closedLoop(
      async () => {
        const id = pick();
        const r = await plain.query(
          `WITH a AS (INSERT INTO audit_entries (at, practice_id, actor_kind, actor_id, role, action, resource_type, purpose, outcome, patient_pseudonym, session_id, request_id, client_address)
             VALUES (now(), $2, 'user', 'bench-clinician', 'clinician', 'read', 'chart', 'treatment', 'success', 'ps_bench', 'bench-session', 'bench', '127.0.0.1'))
           SELECT 'p' AS part, id, identity AS body FROM plain_patients WHERE id = $1
           UNION ALL SELECT 'r', id, body FROM plain_records WHERE patient_id = $1`,
          [id, custos.practiceId],
        );
        if (r.rowCount !== ROWS + 1) {
          throw new Error('wrong row count');
        }
      },
      { concurrency: CONCURRENCY, durationMs: DURATION_MS },
    );
    report({
      bench: 'gate-chart-read',
      engine: 'postgres',
      concurrency: CONCURRENCY,
      rows: ROWS + 1,
      ...gate,
    });
    report({
      bench: 'plaintext-chart-read',
      engine: 'postgres',
      concurrency: CONCURRENCY,
      rows: ROWS + 1,
      ...baseline,
    });
    report({
      bench: 'plaintext-read-plus-audit-insert',
      engine: 'postgres',
      concurrency: CONCURRENCY,
      rows: ROWS + 1,
      ...floor,
    });
    report({
      bench: 'gate-vs-plaintext',
      ratio: round(gate.opsPerSec / baseline.opsPerSec, 3),
      target: 0.5,
      durableWriteFloorRatio: round(floor.opsPerSec / baseline.opsPerSec, 3),
      gateVsFloor: round(gate.opsPerSec / floor.opsPerSec, 3),
    });
  } finally {
    await plain.end();
    await custos.close();
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

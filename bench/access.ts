import fs from 'node:fs';
import { accessContext, systemContext } from '../src/access/context.ts';
import type { Role } from '../src/access/grants.ts';
import {
  decide,
  type PatientFacts,
  type RecordFacts,
  type Resource,
  type Subject,
} from '../src/access/policy.ts';
import { openCustosOn } from '../src/app/custos.ts';
import { Chart } from '../src/chart/gate.ts';
import type { NewRecord } from '../src/chart/model.ts';
import { generateDemoPatients } from '../src/demo/generate.ts';
import { closedLoop, createDatabase, keyFileIn, report, round, tempDir } from './lib.ts';

/**
 * Issue 5: (1) `decide()` alone, decisions per second over a mix of subjects, resources and
 * facts; (2) the gate's whole-chart read with the full policy against the same read with the
 * interim policy (and its smaller facts query), same database, same run, alternating rounds.
 */
const PATIENTS = 200;
const ROWS = 20;
const CONCURRENCY = 8;
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 6000);
const ROUNDS = 2;

export async function run(): Promise<void> {
  decideAlone();
  await gateReads();
}

export function decideAlone(): void {
  const me = '00000000-0000-4000-8000-000000000001';
  const other = '00000000-0000-4000-8000-000000000002';
  const subjects: Subject[] = (
    [['clinician'], ['nurse'], ['frontdesk'], ['billing'], ['admin'], ['nurse', 'billing']] as Role[][]
  ).map((roles) => ({ kind: 'user', id: me, roles }));
  const facts: PatientFacts[] = [
    { restricted: false, onTeam: true, breakGlass: null, consent: null, self: false },
    { restricted: false, onTeam: false, breakGlass: null, consent: null, self: false },
    { restricted: true, onTeam: false, breakGlass: 'grant', consent: null, self: false },
    {
      restricted: false,
      onTeam: true,
      breakGlass: null,
      consent: {
        denyUsers: [other],
        denyRoles: ['billing'],
        withholdCategories: ['mental-health'],
        portalOptOut: false,
      },
      self: false,
    },
  ];
  const record = (
    sensitivity: RecordFacts['sensitivity'],
    authorId: string,
    categories: string[],
  ): RecordFacts => ({
    section: 'condition',
    sensitivity,
    authorId,
    sharedWithSubject: false,
    categories,
    released: false,
  });
  const resources: Resource[] = [
    { kind: 'chart' },
    { kind: 'patient' },
    { kind: 'record', record: record('normal', other, []) },
    { kind: 'record', record: record('restricted', other, []) },
    { kind: 'record', record: record('psychotherapy', me, []) },
    { kind: 'record', record: record('normal', other, ['mental-health']) },
    { kind: 'section', section: 'note' },
  ];
  const cases: [Subject, Resource, PatientFacts][] = [];
  for (const s of subjects) {
    for (const r of resources) {
      for (const f of facts) {
        cases.push([s, r, f]);
      }
    }
  }
  let allowed = 0;
  const loop = (n: number) => {
    for (let i = 0; i < n; i++) {
      const [s, r, f] = cases[i % cases.length]!;
      if (decide(s, 'read', r, { patient: f }).allow) {
        allowed++;
      }
    }
  };
  loop(200_000);
  const N = 5_000_000;
  const t = performance.now();
  loop(N);
  const seconds = (performance.now() - t) / 1000;
  report({
    bench: 'decide',
    cases: cases.length,
    decisions: N,
    decisionsPerSec: Math.round(N / seconds),
    allowedShare: round(allowed / (N + 200_000), 3),
    target: 1_000_000,
  });
}

async function gateReads(): Promise<void> {
  const db = await createDatabase();
  const dir = tempDir('custos-bench-');
  const custos = await openCustosOn(
    { engine: 'postgres', url: db.url, poolSize: CONCURRENCY + 2 },
    { keyFile: keyFileIn(dir) },
  );
  try {
    const sys = systemContext({ practiceId: custos.practiceId, purpose: 'import', requestId: 'bench' });
    const ids: string[] = [];
    for (const p of generateDemoPatients({ count: PATIENTS, seed: 7 })) {
      const { id } = await custos.chart.createPatient(sys, p.identity, { careTeam: ['bench-clinician'] });
      const records = p.records.filter((r) => r.encounterRef === undefined && r.sensitivity === 'normal');
      for (let i = 0; i < ROWS; i++) {
        const r = records[i % records.length]!;
        await custos.chart.createRecord(sys, id, { kind: r.kind, body: r.body } as NewRecord);
      }
      ids.push(id);
    }
    const user = accessContext({
      actor: { kind: 'user', id: 'bench-clinician' },
      role: 'clinician',
      practiceId: custos.practiceId,
      purpose: 'treatment',
      sessionId: 'bench-session',
      clientAddress: '127.0.0.1',
      requestId: 'bench',
    });
    const full = custos.chart;
    const interim = new Chart({
      db: custos.database.db,
      keyring: custos.keyring,
      baseline: 'interim-policy',
    });
    let n = 0;
    const pick = () => ids[n++ % ids.length]!;
    const readWith = (chart: Chart) => async () => {
      const c = await chart.readChart(user, pick());
      if (c.records.length !== ROWS) {
        throw new Error('wrong row count');
      }
    };
    const results: { interim: number[]; full: number[] } = { interim: [], full: [] };
    let last: Record<string, Awaited<ReturnType<typeof closedLoop>>> = {};
    for (let round_ = 0; round_ < ROUNDS; round_++) {
      for (const [name, chart] of [
        ['interim', interim],
        ['full', full],
      ] as const) {
        const r = await closedLoop(readWith(chart), { concurrency: CONCURRENCY, durationMs: DURATION_MS });
        results[name].push(r.opsPerSec);
        last = { ...last, [name]: r };
      }
    }
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    for (const name of ['interim', 'full'] as const) {
      report({
        bench: `gate-chart-read-${name}-policy`,
        engine: 'postgres',
        concurrency: CONCURRENCY,
        rows: ROWS + 1,
        rounds: results[name],
        ...last[name],
      });
    }
    report({
      bench: 'full-vs-interim-policy',
      ratio: round(sum(results.full) / sum(results.interim), 3),
      target: 0.9,
    });
  } finally {
    await custos.close();
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

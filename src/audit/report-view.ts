import type { Anomaly } from './anomalies.ts';
import { encodeControl } from './entry.ts';
import type { ActivityRow, PatientAccessRow } from './report.ts';

/**
 * How `custos audit report` shows its rows: an aligned table for people (times in ISO 8601 UTC)
 * or one JSON object per line for tools. Every cell is control-character encoded again on the way
 * out, so a value changed in the database cannot forge lines on a terminal (OWASP log injection).
 */
export type ReportKind = 'patient' | 'user' | 'logins' | 'anomalies';

type Column<R> = readonly [header: string, cell: (row: R) => unknown];

const common = {
  seq: ['SEQ', (r: { seq: string }) => r.seq],
  at: ['AT (UTC)', (r: { at: Date }) => r.at],
} as const;

export const PATIENT_COLUMNS: readonly Column<PatientAccessRow>[] = [
  common.seq,
  common.at,
  ['ACTOR', (r) => `${r.actorKind}:${r.actorId}`],
  ['ROLE', (r) => r.role],
  ['ON BEHALF OF', (r) => r.onBehalfOf],
  ['ACTION', (r) => r.action],
  ['RESOURCE', (r) => r.resourceType],
  ['PURPOSE', (r) => r.purpose],
  ['OUTCOME', (r) => r.outcome],
  ['VIA', (r) => r.via],
];

export const ACTIVITY_COLUMNS: readonly Column<ActivityRow>[] = [
  common.seq,
  common.at,
  ['ACTOR', (r) => `${r.actorKind}:${r.actorId}`],
  ['ROLE', (r) => r.role],
  ['ACTION', (r) => r.action],
  ['RESOURCE', (r) => r.resourceType],
  ['RESOURCE ID', (r) => r.resourceId],
  ['PATIENT', (r) => r.patientPseudonym],
  ['PURPOSE', (r) => r.purpose],
  ['OUTCOME', (r) => r.outcome],
  ['REASON', (r) => r.reason],
  ['ADDRESS', (r) => r.clientAddress],
];

export const ANOMALY_COLUMNS: readonly Column<Anomaly>[] = [
  ['KIND', (r) => r.kind],
  common.at,
  ['ACTOR', (r) => `${r.actorKind}:${r.actorId}`],
  [
    'WHAT',
    (r) => {
      switch (r.kind) {
        case 'break-glass':
        case 'restricted':
        case 'namesake':
        case 'out-of-hours':
          return `${[r.action, r.resourceType, r.patientPseudonym].filter(Boolean).join(' ')} (${r.purpose}, ${r.outcome}, local ${r.localTime})`;
        case 'bulk-read':
          return `${r.patients} patients in one hour`;
        case 'denied':
          return `${r.attempts} denied attempts until ${iso(r.lastAt)} (${r.reasons.join(', ')})`;
        default:
          return '';
      }
    },
  ],
  ['SEQS', (r) => r.seqs.join(',')],
];

const iso = (d: Date) => d.toISOString();

function text(v: unknown): string {
  if (v === null || v === undefined || v === '') {
    return '-';
  }
  return encodeControl(v instanceof Date ? iso(v) : String(v));
}

/** Aligned columns with a header line; the last column is not padded. */
export function renderTable<R>(columns: readonly Column<R>[], rows: readonly R[]): string {
  const cells = [columns.map(([h]) => h), ...rows.map((r) => columns.map(([, cell]) => text(cell(r))))];
  const widths = columns.map((_, i) => Math.max(...cells.map((line) => line[i]?.length ?? 0)));
  return cells
    .map((line) =>
      line
        .map((c, i) => (i === line.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .map((l) => `${l}\n`)
    .join('');
}

/** One JSON object per row; JSON escapes control characters itself. */
export function renderJsonLines(rows: readonly object[]): string {
  return rows.map((r) => `${JSON.stringify(r)}\n`).join('');
}

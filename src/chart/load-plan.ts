import type { AccessContext } from '../access/context.ts';
import type { Chart } from './gate.ts';
import type { PlannedPatient, RecordBody } from './model.ts';

export interface LoadedPatient {
  readonly fullUrl: string;
  readonly id: string;
  readonly records: number;
}

/**
 * Loads planned patients (a FHIR bundle, or demo data) through the gate, all in one
 * transaction: either every patient and record is stored, or none is.
 */
export async function loadPlan(
  chart: Chart,
  ctx: AccessContext,
  plan: readonly PlannedPatient[],
  options: { detail?: Record<string, number>; onPatient?: () => void } = {},
): Promise<LoadedPatient[]> {
  return chart.batch(
    ctx,
    {
      action: 'import',
      detail: (loaded) => ({
        patients: loaded.length,
        records: loaded.reduce((n, p) => n + p.records, 0),
        ...options.detail,
      }),
    },
    async (tx) => {
      const loaded: LoadedPatient[] = [];
      for (const p of plan) {
        const { id } = await tx.createPatient(ctx, p.identity);
        const ids = new Map<string, string>();
        for (const r of p.records) {
          const encounterId = r.encounterRef === undefined ? undefined : ids.get(r.encounterRef);
          if (r.encounterRef !== undefined && encounterId === undefined) {
            throw new Error(`plan refers to encounter ${r.encounterRef} before creating it`);
          }
          const body = (encounterId ? { ...r.body, encounterId } : r.body) as RecordBody;
          const created = await tx.createRecord(ctx, id, {
            kind: r.kind,
            body,
            sensitivity: r.sensitivity,
            ...(r.authorId ? { authorId: r.authorId } : {}),
          });
          ids.set(r.localRef, created.id);
        }
        loaded.push({ fullUrl: p.fullUrl, id, records: p.records.length });
        options.onPatient?.();
      }
      return loaded;
    },
  );
}

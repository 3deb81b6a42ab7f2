import { createPublicKey, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { systemContext } from '../access/context.ts';
import { openCustos } from '../app/custos.ts';
import { anomalyReport } from '../audit/anomalies.ts';
import { append } from '../audit/append.ts';
import { type CheckpointJson, checkpointFromJson, checkpointToJson } from '../audit/checkpoint.ts';
import { writeAuditBundle } from '../audit/fhir.ts';
import { checkProof, type ProofJson, proveConsistency, proveEntry } from '../audit/proofs.ts';
import {
  entryPages,
  loginReport,
  patientAccessReport,
  type ReportWindow,
  userActivityReport,
  windowExtent,
} from '../audit/report.ts';
import {
  ACTIVITY_COLUMNS,
  ANOMALY_COLUMNS,
  PATIENT_COLUMNS,
  type ReportKind,
  renderJsonLines,
  renderTable,
} from '../audit/report-view.ts';
import { sealOnce } from '../audit/sealer.ts';
import { checkpointFromRow } from '../audit/store.ts';
import { verifyTrail } from '../audit/verify.ts';
import type { Config } from '../config/config.ts';
import { renderProgress } from '../demo/generate.ts';
import { EXIT_FAILED, EXIT_OK, type Io, parseOptions, UsageError } from './output.ts';
import { withCustos as withSealingSession } from './session.ts';

type Sub = (args: string[], config: Config, io: Io) => Promise<number>;

function wholeNumber(name: string, value: string | undefined, min = 1): number | undefined {
  if (value === undefined) {
    return undefined;
  }
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`--${name} must be a whole number of at least ${min}`);
  }
  return n;
}

async function withCustos<T>(
  config: Config,
  fn: (c: Awaited<ReturnType<typeof openCustos>>) => Promise<T>,
): Promise<T> {
  const c = await openCustos(config);
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

/** `YYYY-MM-DD` (UTC midnight) or a date-time with a zone: no local-time guessing. */
const ISO_8601 = /^(\d{4})-(\d{2})-(\d{2})(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2}))?$/;

function isoDate(name: string, value: string | undefined): Date | undefined {
  if (value === undefined) {
    return undefined;
  }
  const m = ISO_8601.exec(value);
  const d = new Date(value);
  // Date accepts 2026-02-30 and rolls it over; the calendar check refuses it.
  const day = m ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))) : undefined;
  if (
    !m ||
    Number.isNaN(d.getTime()) ||
    day?.getUTCMonth() !== Number(m[2]) - 1 ||
    day?.getUTCDate() !== Number(m[3])
  ) {
    throw new UsageError(
      `--${name} must be an ISO 8601 date (2026-01-31) or date-time with a zone (2026-01-31T08:00:00Z)`,
    );
  }
  return d;
}

function reportWindow(values: { since?: string | undefined; until?: string | undefined }) {
  const since = isoDate('since', values.since);
  const until = isoDate('until', values.until);
  if (since && until && until <= since) {
    throw new UsageError('--until must be later than --since');
  }
  return { since, until };
}

/** The window as audit-entry detail (ISO strings; absent ends are left out). */
const windowDetail = (w: { since?: Date | undefined; until?: Date | undefined }) => ({
  ...(w.since ? { since: w.since.toISOString() } : {}),
  ...(w.until ? { until: w.until.toISOString() } : {}),
});

/** Writes one chunk and waits until the stream has taken it (backpressure for large exports). */
const writer = (io: Io) => (chunk: string) =>
  new Promise<void>((resolve, reject) => {
    io.stdout.write(chunk, (e) => (e ? reject(e) : resolve()));
  });

/** JSON lines from `custos audit checkpoints`, kept outside the database. */
function readAnchors(file: string) {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new UsageError(`cannot read --anchor ${file}`);
  }
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((line, i) => {
      try {
        return checkpointFromJson(JSON.parse(line) as CheckpointJson);
      } catch {
        throw new UsageError(`--anchor line ${i + 1}: not a checkpoint from custos audit checkpoints`);
      }
    });
}

export const auditCommands: Record<string, Sub> = {
  async verify(args, config, io) {
    const { values } = parseOptions(args, {
      'from-checkpoint': { type: 'string' },
      anchor: { type: 'string' },
    });
    const fromCheckpoint = wholeNumber('from-checkpoint', values['from-checkpoint']);
    const anchors = values.anchor === undefined ? [] : readAnchors(values.anchor);
    const result = await withCustos(config, async (c) => {
      const r = await verifyTrail(c.database.db, {
        publicKey: c.keyring.auditPublicKey,
        keyId: c.keyring.auditKeyId,
        ...(fromCheckpoint ? { fromCheckpoint } : {}),
        anchors,
        onProgress: (done, total) => {
          if (io.stderr.isTTY) {
            io.stderr.write(`\r${renderProgress(done, total)}`);
          }
        },
      });
      if (io.stderr.isTTY) {
        io.stderr.write('\n');
      }
      return r;
    });
    if (result.ok) {
      io.stdout.write(
        `audit trail intact: ${result.entries} entries in ${result.checkpoints} checkpoints verified (tree size ${result.treeSize}), ${result.unsealed} not yet sealed\n`,
      );
      return EXIT_OK;
    }
    io.stdout.write(`audit trail broken at ${result.at}: ${result.problem}\n`);
    return EXIT_FAILED;
  },

  async seal(args, config, io) {
    parseOptions(args, {});
    const r = await withCustos(config, (c) =>
      sealOnce({ db: c.database.db, keyring: c.keyring, horizonTimeoutMs: 30_000 }),
    );
    io.stdout.write(`${JSON.stringify(r)}\n`);
    return EXIT_OK;
  },

  async checkpoints(args, config, io) {
    const { values } = parseOptions(args, { since: { type: 'string' } });
    const since = wholeNumber('since', values.since, 0) ?? 0;
    await withCustos(config, async (c) => {
      const rows = await c.database.db
        .selectFrom('audit_checkpoints')
        .selectAll()
        .where('number', '>', String(since))
        .orderBy('number')
        .execute();
      for (const r of rows) {
        io.stdout.write(`${JSON.stringify(checkpointToJson(checkpointFromRow(r)))}\n`);
      }
    });
    return EXIT_OK;
  },

  async prove(args, config, io) {
    const { values } = parseOptions(args, {
      entry: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
    });
    const entry = wholeNumber('entry', values.entry);
    const from = wholeNumber('from', values.from);
    const to = wholeNumber('to', values.to);
    if ((entry === undefined) === (from === undefined || to === undefined)) {
      throw new UsageError('prove needs either --entry SEQ or both --from N and --to M');
    }
    const proof = await withCustos(
      config,
      (c): Promise<ProofJson> =>
        entry !== undefined
          ? proveEntry(c.database.db, entry)
          : proveConsistency(c.database.db, from ?? 0, to ?? 0),
    );
    io.stdout.write(`${JSON.stringify(proof, null, 2)}\n`);
    return EXIT_OK;
  },

  /** Offline: needs no database, only the proof and the audit public key (PEM). */
  async 'check-proof'(args, _config, io) {
    const { values, positionals } = parseOptions(args, { 'public-key': { type: 'string' } }, 1);
    const file = positionals[0];
    if (!file || !values['public-key']) {
      throw new UsageError(
        'check-proof needs a proof FILE and --public-key PEMFILE (from custos audit public-key)',
      );
    }
    let proof: ProofJson;
    let key: ReturnType<typeof createPublicKey>;
    try {
      proof = JSON.parse(fs.readFileSync(file, 'utf8')) as ProofJson;
      key = createPublicKey(fs.readFileSync(values['public-key'], 'utf8'));
    } catch (e) {
      throw new UsageError(`cannot read the proof or the public key (${(e as Error).name})`);
    }
    if (proof?.type !== 'inclusion' && proof?.type !== 'consistency') {
      throw new UsageError('proof.type: must be inclusion or consistency');
    }
    const r = checkProof(proof, key);
    io.stdout.write(r.ok ? `proof verifies: ${r.summary}\n` : `proof does not verify: ${r.problem}\n`);
    return r.ok ? EXIT_OK : EXIT_FAILED;
  },

  async 'public-key'(args, config, io) {
    parseOptions(args, {});
    await withCustos(config, async (c) => {
      io.stdout.write(c.keyring.auditPublicKey.export({ format: 'pem', type: 'spki' }).toString());
    });
    return EXIT_OK;
  },

  /**
   * `audit report --patient ID | --user NAME | --logins | --anomalies`: one report, itself audited
   * (the run appends an entry in the transaction that read the rows, before anything is printed).
   */
  async report(args, config, io) {
    const { values } = parseOptions(args, {
      patient: { type: 'string' },
      user: { type: 'string' },
      logins: { type: 'boolean' },
      anomalies: { type: 'boolean' },
      since: { type: 'string' },
      until: { type: 'string' },
      json: { type: 'boolean' },
      'bulk-threshold': { type: 'string' },
    });
    const kinds: ReportKind[] = [];
    if (values.patient !== undefined) {
      kinds.push('patient');
    }
    if (values.user !== undefined) {
      kinds.push('user');
    }
    if (values.logins) {
      kinds.push('logins');
    }
    if (values.anomalies) {
      kinds.push('anomalies');
    }
    const [kind] = kinds;
    if (kinds.length !== 1 || kind === undefined) {
      throw new UsageError('report needs exactly one of --patient ID, --user NAME, --logins, --anomalies');
    }
    const w = reportWindow(values);
    const bulkThreshold = wholeNumber('bulk-threshold', values['bulk-threshold']);
    if (bulkThreshold !== undefined && kind !== 'anomalies') {
      throw new UsageError('--bulk-threshold goes with --anomalies only');
    }
    if (values.user !== undefined && values.user.trim() === '') {
      throw new UsageError('--user needs a user id');
    }
    // The run writes audit entries: the session seals them afterwards like any writing command.
    const output = await withSealingSession(config, io, async (c) => {
      const ctx = systemContext({ practiceId: c.practiceId, purpose: 'audit', requestId: randomUUID() });
      // The gate resolves the pseudonym (and audits that it did); an unknown id is its not-found error.
      const pseudonym =
        values.patient === undefined ? undefined : await c.chart.patientPseudonym(ctx, values.patient);
      const scope: ReportWindow = { ...w, practiceId: c.practiceId };
      return c.database.db.transaction().execute(async (tx) => {
        let text: string;
        let rows: number;
        let subject: Record<string, string> = {};
        if (kind === 'patient' && pseudonym !== undefined) {
          const r = await patientAccessReport(tx, { ...scope, pseudonym });
          [text, rows] = [values.json ? renderJsonLines(r) : renderTable(PATIENT_COLUMNS, r), r.length];
        } else if (kind === 'user' && values.user !== undefined) {
          const r = await userActivityReport(tx, { ...scope, actorId: values.user });
          [text, rows] = [values.json ? renderJsonLines(r) : renderTable(ACTIVITY_COLUMNS, r), r.length];
          subject = { actorId: values.user };
        } else if (kind === 'logins') {
          const r = await loginReport(tx, scope);
          [text, rows] = [values.json ? renderJsonLines(r) : renderTable(ACTIVITY_COLUMNS, r), r.length];
        } else {
          const r = await anomalyReport(tx, { ...scope, ...(bulkThreshold ? { bulkThreshold } : {}) });
          [text, rows] = [values.json ? renderJsonLines(r) : renderTable(ANOMALY_COLUMNS, r), r.length];
        }
        await append(
          tx,
          ctx,
          {
            action: 'report',
            resourceType: 'audit-report',
            outcome: 'success',
            // A report about a patient shows up in that patient's own report.
            patientPseudonym: pseudonym ?? null,
            detail: { kind, ...windowDetail(w), rows, ...subject },
          },
          new Date(),
        );
        return text;
      });
    });
    io.stdout.write(output);
    return EXIT_OK;
  },

  /**
   * `audit export --fhir`: the trail as one FHIR R4 collection Bundle of AuditEvents, streamed
   * page by page. The export is audited before the first byte goes out.
   */
  async export(args, config, io) {
    const { values } = parseOptions(args, {
      fhir: { type: 'boolean' },
      since: { type: 'string' },
      until: { type: 'string' },
    });
    if (!values.fhir) {
      throw new UsageError('export needs --fhir (the only format so far)');
    }
    const w = reportWindow(values);
    await withSealingSession(config, io, async (c) => {
      const db = c.database.db;
      const ctx = systemContext({ practiceId: c.practiceId, purpose: 'audit', requestId: randomUUID() });
      const scope: ReportWindow = { ...w, practiceId: c.practiceId };
      // The export covers the window up to the last entry that exists now; this export's own
      // entry, and anything appended while it streams, come after it.
      const extent = await windowExtent(db, scope);
      await append(
        db,
        ctx,
        {
          action: 'export',
          resourceType: 'audit-export',
          outcome: 'success',
          detail: { kind: 'fhir', ...windowDetail(w), rows: extent.count, throughSeq: extent.lastSeq },
        },
        new Date(),
      );
      await writeAuditBundle(entryPages(db, { ...scope, throughSeq: extent.lastSeq }), writer(io), {
        practiceId: c.practiceId,
      });
    });
    return EXIT_OK;
  },
};

export async function audit(args: string[], config: Config, io: Io): Promise<number> {
  const [sub, ...rest] = args;
  const run = sub === undefined ? undefined : auditCommands[sub];
  if (!run) {
    throw new UsageError(`audit needs one of: ${Object.keys(auditCommands).join(', ')}`);
  }
  return run(rest, config, io);
}

import { createPublicKey } from 'node:crypto';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { openCustos } from '../app/custos.ts';
import { type CheckpointJson, checkpointFromJson, checkpointToJson } from '../audit/checkpoint.ts';
import { checkProof, type ProofJson, proveConsistency, proveEntry } from '../audit/proofs.ts';
import { sealOnce } from '../audit/sealer.ts';
import { checkpointFromRow } from '../audit/store.ts';
import { verifyTrail } from '../audit/verify.ts';
import type { Config } from '../config/config.ts';
import { renderProgress } from '../demo/generate.ts';
import { EXIT_FAILED, EXIT_OK, type Io, UsageError } from './output.ts';

type Sub = (args: string[], config: Config, io: Io) => Promise<number>;

function opts<T extends Record<string, { type: 'string' | 'boolean' }>>(
  args: string[],
  options: T,
  positionals = 0,
) {
  try {
    const r = parseArgs({ args, options, allowPositionals: positionals > 0, strict: true });
    if (r.positionals.length > positionals) {
      throw new UsageError(`unexpected argument '${r.positionals[positionals]}'`);
    }
    return r;
  } catch (e) {
    throw e instanceof UsageError
      ? e
      : new UsageError((e as Error).message.split('\n')[0] ?? 'bad arguments');
  }
}

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
    const { values } = opts(args, { 'from-checkpoint': { type: 'string' }, anchor: { type: 'string' } });
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
    opts(args, {});
    const r = await withCustos(config, (c) =>
      sealOnce({ db: c.database.db, keyring: c.keyring, horizonTimeoutMs: 30_000 }),
    );
    io.stdout.write(`${JSON.stringify(r)}\n`);
    return EXIT_OK;
  },

  async checkpoints(args, config, io) {
    const { values } = opts(args, { since: { type: 'string' } });
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
    const { values } = opts(args, {
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
    const { values, positionals } = opts(args, { 'public-key': { type: 'string' } }, 1);
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
    opts(args, {});
    await withCustos(config, async (c) => {
      io.stdout.write(c.keyring.auditPublicKey.export({ format: 'pem', type: 'spki' }).toString());
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

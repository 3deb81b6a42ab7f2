import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { accessContext, systemContext } from '../access/context.ts';
import type { Custos } from '../app/custos.ts';
import { PURPOSE_CODES, type PurposeCode } from '../chart/export.service.ts';
import { type Config, exportPassphrase } from '../config/config.ts';
import { CustosError, isCustosError } from '../errors.ts';
import { toFhirBundle } from '../fhir/export.ts';
import { MIN_PASSPHRASE, openArchive } from '../files/export-archive.ts';
import { buildServices } from '../http/services.ts';
import { type RequestMeta, securityContext, securityEvent } from '../identity/events.ts';
import { EXIT_OK, type Io, parseOptions, UsageError } from './output.ts';
import { withCustos } from './session.ts';

const USAGE =
  'export needs --patient ID, or --all --user NAME --purpose-code CODE --purpose TEXT --out FILE, or --decrypt FILE';

/** Where CLI requests come from in the audit trail and the address throttle. */
const CLI_ADDRESS = 'cli';

/**
 * `custos export`:
 *
 * - `--patient ID`: one patient's chart as a FHIR R4 Bundle on stdout (the operator, as the
 *   `system` actor, audited as an export; psychotherapy notes never).
 * - `--all --user NAME --purpose-code CODE --purpose TEXT --out FILE`: the bulk export. The
 *   privacy officer NAME logs in here and now with password and TOTP code (the step-up is this
 *   fresh login; the session ends with the command); the archive's passphrase comes from
 *   `CUSTOS_EXPORT_PASSPHRASE` or standard input, never from a flag (flags end up in shell
 *   history and process lists). Standard input gives, one per line: password, code, passphrase
 *   (on a terminal each is asked for, without echo, the passphrase twice). FILE must not exist;
 *   it is removed again if the export fails. Prints `{exportId, patients, records, bytes, sha256,
 *   file}`.
 * - `--decrypt FILE [--out FILE]`: opens an archive (passphrase as above; no database needed)
 *   and writes the NDJSON to stdout or to a new file.
 */
export async function exportCommand(args: string[], config: Config, io: Io): Promise<number> {
  const { values } = parseOptions(args, {
    patient: { type: 'string' },
    all: { type: 'boolean' },
    decrypt: { type: 'string' },
    user: { type: 'string' },
    'purpose-code': { type: 'string' },
    purpose: { type: 'string' },
    out: { type: 'string' },
  });
  const modes = [values.patient !== undefined, values.all === true, values.decrypt !== undefined];
  if (modes.filter(Boolean).length !== 1) {
    throw new UsageError(USAGE);
  }
  if (values.patient !== undefined) {
    onlyWith('--patient', values, ['patient']);
    return exportPatient(values.patient, config, io);
  }
  if (values.decrypt !== undefined) {
    onlyWith('--decrypt', values, ['decrypt', 'out']);
    return decrypt(values.decrypt, values.out, io);
  }
  onlyWith('--all', values, ['all', 'user', 'purpose-code', 'purpose', 'out']);
  return exportAll(
    {
      user: values.user,
      purposeCode: values['purpose-code'],
      purpose: values.purpose,
      out: values.out,
    },
    config,
    io,
  );
}

function onlyWith(mode: string, values: Record<string, unknown>, allowed: readonly string[]): void {
  const extra = Object.keys(values).find((k) => values[k] !== undefined && !allowed.includes(k));
  if (extra) {
    throw new UsageError(`--${extra} does not go with ${mode}`);
  }
}

async function exportPatient(patientId: string, config: Config, io: Io): Promise<number> {
  const bundle = await withCustos(config, io, async (c) => {
    const ctx = systemContext({ practiceId: c.practiceId, purpose: 'export', requestId: randomUUID() });
    const { patient, records } = await c.chart.exportChart(ctx, patientId);
    return toFhirBundle(patient, records);
  });
  io.stdout.write(`${JSON.stringify(bundle, null, 2)}\n`);
  return EXIT_OK;
}

/** Checks every option before anything is read from stdin or opened. */
function checkAllOptions(o: { user?: string; purposeCode?: string; purpose?: string; out?: string }) {
  if (!o.user) {
    throw new UsageError('--user: needs the username of the privacy officer who exports');
  }
  if (!o.purposeCode || !(PURPOSE_CODES as readonly string[]).includes(o.purposeCode)) {
    throw new UsageError(`--purpose-code: must be one of ${PURPOSE_CODES.join(', ')}`);
  }
  const purpose = (o.purpose ?? '').trim();
  if (purpose.length < 10) {
    throw new UsageError('--purpose: must state the purpose in at least 10 characters');
  }
  if (purpose.length > 500) {
    throw new UsageError('--purpose: must be at most 500 characters');
  }
  const out = checkOut(o.out, true);
  return { user: o.user, purposeCode: o.purposeCode as PurposeCode, purpose, out };
}

function checkOut(out: string | undefined, required: true): string;
function checkOut(out: string | undefined, required: false): string | undefined;
function checkOut(out: string | undefined, required: boolean): string | undefined {
  if (out === undefined || out === '') {
    if (required) {
      throw new UsageError('--out: needs a FILE to write the encrypted archive to');
    }
    return undefined;
  }
  const file = path.resolve(out);
  if (fs.existsSync(file)) {
    throw new UsageError('--out: the file exists already; choose a new one');
  }
  if (!fs.existsSync(path.dirname(file))) {
    throw new UsageError('--out: its folder does not exist');
  }
  return file;
}

async function exportAll(
  options: { user?: string; purposeCode?: string; purpose?: string; out?: string },
  config: Config,
  io: Io,
): Promise<number> {
  const o = checkAllOptions(options);
  const fromEnv = exportPassphrase();
  const prompts = ['password', 'TOTP code'];
  if (!fromEnv) {
    prompts.push('archive passphrase');
  }
  const secrets = await readSecrets(io, prompts, !fromEnv);
  const [password = '', code = ''] = secrets;
  const passphrase = fromEnv ?? secrets[2] ?? '';
  checkPassphraseOption(passphrase);
  const summary = await withCustos(config, io, (c) =>
    asLoggedIn(c, { username: o.user, password, code }, async (ctx) => {
      const e = await c.chart
        .exportAll(ctx, { purposeCode: o.purposeCode, purpose: o.purpose, passphrase })
        .catch((err: unknown) => {
          // The gate answers a refusal like a missing object (and audits it); the operator at the
          // terminal may be told which grant is missing.
          throw isCustosError(err, 'CUSTOS_ERR_NOT_FOUND')
            ? new CustosError(
                'CUSTOS_ERR_NOT_FOUND',
                'bulk export refused: it needs an active privacy_officer account',
              )
            : err;
        });
      try {
        await pipeline(e.archive, fs.createWriteStream(o.out, { flags: 'wx', mode: 0o600 }));
      } catch (err) {
        fs.rmSync(o.out, { force: true });
        throw err;
      }
      const s = await e.finished;
      if (s.status !== 'finished') {
        fs.rmSync(o.out, { force: true });
        throw new CustosError('CUSTOS_ERR_INTEGRITY', `export ${e.id} did not finish`);
      }
      return s;
    }),
  );
  io.stdout.write(
    `${JSON.stringify({
      exportId: summary.id,
      patients: summary.patients,
      records: summary.records,
      bytes: summary.bytes,
      sha256: summary.sha256,
      file: o.out,
    })}\n`,
  );
  return EXIT_OK;
}

function checkPassphraseOption(passphrase: string): void {
  if ([...passphrase.normalize('NFKC')].length < MIN_PASSPHRASE) {
    throw new UsageError(
      `passphrase (CUSTOS_EXPORT_PASSPHRASE or standard input): must have at least ${MIN_PASSPHRASE} characters`,
    );
  }
}

/**
 * Logs a staff user in with password and TOTP code (the same checks, throttles, lockout and audit
 * entries as the API's login), runs `fn` with the session's context, then ends the session.
 */
async function asLoggedIn<T>(
  c: Custos,
  credentials: { username: string; password: string; code: string },
  fn: (ctx: ReturnType<typeof accessContext>) => Promise<T>,
): Promise<T> {
  const s = buildServices(c);
  const meta: RequestMeta = {
    practiceId: c.practiceId,
    clientAddress: CLI_ADDRESS,
    userAgentHash: null,
    requestId: randomUUID(),
  };
  const failed = (reason: string) =>
    new CustosError(
      'CUSTOS_ERR_LOGIN_FAILED',
      reason === 'failed' ? 'login failed' : `login refused (${reason})`,
    );
  const first = await s.login.password(meta, {
    username: credentials.username,
    password: credentials.password,
  });
  if (!first.ok) {
    throw failed(first.reason);
  }
  const second = await s.login.secondFactor(meta, first.token, { code: credentials.code.trim() });
  if (!second.ok) {
    throw failed(second.reason);
  }
  const check = await s.sessions.check(second.token);
  if (!check.ok) {
    throw failed('failed');
  }
  const session = check.session;
  const user = await c.database.db
    .selectFrom('users')
    .select(['id', 'roles'])
    .where('id', '=', session.userId)
    .executeTakeFirstOrThrow();
  const ctx = accessContext({
    actor: { kind: 'user', id: user.id },
    role: user.roles.join(','),
    practiceId: session.practiceId,
    purpose: 'export',
    sessionId: session.idHash.subarray(0, 16).toString('hex'),
    ...(session.reauthAt ? { reauthenticatedAt: session.reauthAt } : {}),
    clientAddress: CLI_ADDRESS,
    requestId: meta.requestId,
  });
  try {
    return await fn(ctx);
  } finally {
    await s.sessions.end(session.idHash, 'logout');
    await securityEvent(
      c.database.db,
      securityContext({ ...meta, sessionId: ctx.sessionId ?? '' }, { id: user.id, role: ctx.role }),
      { action: 'logout', resourceType: 'session', resourceId: ctx.sessionId ?? null, outcome: 'success' },
      s.clock(),
    );
  }
}

async function decrypt(file: string, out: string | undefined, io: Io): Promise<number> {
  if (!fs.existsSync(file)) {
    throw new UsageError('--decrypt: no such FILE');
  }
  const target = checkOut(out, false);
  const passphrase = exportPassphrase() ?? (await readSecrets(io, ['archive passphrase'], false))[0] ?? '';
  if (passphrase === '') {
    throw new UsageError('passphrase (CUSTOS_EXPORT_PASSPHRASE or standard input): is required');
  }
  const { content } = await openArchive(fs.createReadStream(file), passphrase);
  if (target === undefined) {
    await pipeline(content, io.stdout as NodeJS.WritableStream);
    return EXIT_OK;
  }
  // A partial file is never left under the final name: write aside, rename when authentic to the end.
  const partial = `${target}.partial-${randomUUID().slice(0, 8)}`;
  try {
    await pipeline(content, fs.createWriteStream(partial, { flags: 'wx', mode: 0o600 }));
    fs.renameSync(partial, target);
  } catch (e) {
    fs.rmSync(partial, { force: true });
    throw e;
  }
  return EXIT_OK;
}

/**
 * Reads secrets one line each from standard input; on a terminal, asks for each without echo (and
 * for the passphrase a second time when `confirm` is set).
 */
async function readSecrets(io: Io, names: readonly string[], confirm: boolean): Promise<string[]> {
  const input = io.stdin;
  if (!input) {
    throw new UsageError(`standard input is needed for the ${names[0] ?? 'secret'}`);
  }
  const tty = Boolean(input.isTTY);
  const rl = readline.createInterface({
    input,
    // On a terminal, readline echoes into this sink: nothing typed is shown.
    ...(tty ? { output: new Writable({ write: (_c, _e, done) => done() }), terminal: true } : {}),
  });
  const lines = rl[Symbol.asyncIterator]();
  const ask = async (name: string): Promise<string> => {
    if (tty) {
      io.stderr.write(`${name}: `);
    }
    const next = await lines.next();
    if (tty) {
      io.stderr.write('\n');
    }
    if (next.done) {
      throw new UsageError(`standard input ended before the ${name}`);
    }
    return next.value as string;
  };
  try {
    const out: string[] = [];
    for (const name of names) {
      out.push(await ask(name));
    }
    if (tty && confirm && names.includes('archive passphrase')) {
      if ((await ask('archive passphrase again')) !== out[out.length - 1]) {
        throw new UsageError('passphrase: the two entries differ');
      }
    }
    return out;
  } finally {
    rl.close();
  }
}

import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemContext } from '../src/access/context.ts';
import { type Custos, openCustos } from '../src/app/custos.ts';
import { type Config, loadConfig } from '../src/config/config.ts';
import { buildServices } from '../src/http/services.ts';
import { PasswordHasher } from '../src/identity/password.ts';
import { totpAt } from '../src/identity/totp.ts';
import { runCli } from './support/cli.ts';
import { type CliData, cliData } from './support/cli-data.ts';
import { skipReason } from './support/db.ts';
import { identity, note } from './support/fixtures.ts';
import { PASSWORD } from './support/staff.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] export-cli.int.test.ts skipped: ${skip}`);
}

const FAMILY = 'Exportclisynthetica';
const NOTE = 'Synthetic CLI export note.';
const PSY = 'Synthetic CLI psychotherapy marker, never exported.';
const PASS = 'synthetic cli export passphrase';
const PURPOSE = 'Synthetic backup check of the Exampleville practice';

const all = (user: string, out: string, extra: string[] = []) => [
  'export',
  '--all',
  '--user',
  user,
  '--purpose-code',
  'backup-verification',
  '--purpose',
  PURPOSE,
  '--out',
  out,
  ...extra,
];

/**
 * `custos export --all`, `--decrypt` and the usage errors, through the real command. Each
 * command is a process of its own (a few seconds each on a busy machine), hence the timeouts.
 */
describe.skipIf(skip)('custos export --all and --decrypt', () => {
  let d: CliData;
  let config: Config;
  const secrets: Record<string, { id: string; secret: string }> = {};
  let setupSeq = '0';
  const file = (name: string) => path.join(d.dataDir, name);

  /** Opens the data folder (never while a command runs: the embedded database has one user). */
  async function withDb<T>(fn: (c: Custos) => Promise<T>): Promise<T> {
    const c = await openCustos(config);
    try {
      return await fn(c);
    } finally {
      await c.close();
    }
  }
  const code = (who: string) => totpAt(secrets[who]!.secret, new Date());

  beforeAll(async () => {
    d = await cliData();
    config = loadConfig(d.env, d.dataDir);
    await withDb(async (c) => {
      const s = buildServices(c, {
        hasher: new PasswordHasher({ memoryCost: 1024, timeCost: 1, parallelism: 1 }),
      });
      const sys = systemContext({ practiceId: c.practiceId, purpose: 'operations', requestId: randomUUID() });
      for (const [username, roles] of [
        ['olga', ['privacy_officer']],
        ['oscar', ['privacy_officer']],
        ['carl', ['clinician']],
      ] as const) {
        const { userId, token } = await s.accounts.add(sys, { username, roles: [...roles] });
        await s.accounts.enrollPassword(token, PASSWORD);
        const { secret } = await s.accounts.enrollTotp(token);
        await s.accounts.confirmTotp(token, totpAt(secret, new Date()), { ctx: sys });
        // The enrollment used this time step; the command's login may come within the same 30 s.
        await c.database.db
          .updateTable('users')
          .set({ totp_last_step: null })
          .where('id', '=', userId)
          .execute();
        secrets[username] = { id: userId, secret };
      }
      const load = systemContext({ practiceId: c.practiceId, purpose: 'import', requestId: randomUUID() });
      for (let i = 0; i < 3; i++) {
        const { id } = await c.chart.createPatient(
          load,
          identity({ name: { given: ['Cli'], family: `${FAMILY}${i}` } }),
          { careTeam: [secrets.carl!.id] },
        );
        await c.chart.createRecord(load, id, note(NOTE));
        await c.chart.createRecord(load, id, {
          ...note(PSY),
          sensitivity: 'psychotherapy',
          authorId: secrets.carl!.id,
        });
      }
      // Entries written by the commands come after this one.
      setupSeq = String(
        (
          await c.database.owner
            .selectFrom('audit_entries')
            .select((eb) => eb.fn.max('seq').as('m'))
            .executeTakeFirst()
        )?.m ?? '0',
      );
    });
  }, 180_000);
  afterAll(async () => {
    await d?.cleanup();
  });

  it('explains each bad option in one line with exit 2, before asking for any secret', async () => {
    fs.writeFileSync(file('exists.cxa'), 'x');
    const cases: [string[], string][] = [
      [
        ['export', '--all', '--purpose-code', 'legal'],
        '--user: needs the username of the privacy officer who exports',
      ],
      [
        [
          'export',
          '--all',
          '--user',
          'olga',
          '--purpose-code',
          'research',
          '--purpose',
          PURPOSE,
          '--out',
          'x',
        ],
        '--purpose-code: must be one of migration, legal, backup-verification, regulatory',
      ],
      [
        ['export', '--all', '--user', 'olga', '--purpose-code', 'legal', '--out', 'x'],
        '--purpose: must state the purpose in at least 10 characters',
      ],
      [
        ['export', '--all', '--user', 'olga', '--purpose-code', 'legal', '--purpose', PURPOSE],
        '--out: needs a FILE to write the encrypted archive to',
      ],
      [all('olga', file('exists.cxa')), '--out: the file exists already; choose a new one'],
      [all('olga', file('no/such/dir.cxa')), '--out: its folder does not exist'],
      [['export', '--all', '--patient', randomUUID()], USAGE],
      [['export', '--patient', randomUUID(), '--out', 'x'], '--out does not go with --patient'],
      [['export', '--decrypt', file('missing.cxa')], '--decrypt: no such FILE'],
    ];
    for (const [args, message] of cases) {
      expect(await runCli(args, d.env), args.join(' ')).toEqual({
        code: 2,
        stdout: '',
        stderr: `custos: ${message} (see custos --help)\n`,
      });
    }
    // A short passphrase from the environment: refused before logging in (no code is burnt).
    const r = await runCli(
      all('olga', file('short.cxa')),
      { ...d.env, CUSTOS_EXPORT_PASSPHRASE: 'too short' },
      `${PASSWORD}\n000000\n`,
    );
    expect(r).toEqual({
      code: 2,
      stdout: '',
      stderr:
        'custos: passphrase (CUSTOS_EXPORT_PASSPHRASE or standard input): must have at least 16 characters (see custos --help)\n',
    });
    expect(fs.existsSync(file('short.cxa'))).toBe(false);
  }, 300_000);

  it('refuses a clinician after login, audited, and a wrong code before anything', async () => {
    const carl = await runCli(
      all('carl', file('carl.cxa')),
      d.env,
      `${PASSWORD}\n${code('carl')}\n${PASS}\n`,
    );
    expect(carl).toEqual({
      code: 1,
      stdout: '',
      stderr: 'custos: bulk export refused: it needs an active privacy_officer account\n',
    });
    const wrong = await runCli(all('oscar', file('oscar.cxa')), d.env, `${PASSWORD}\n000000\n${PASS}\n`);
    expect(wrong).toEqual({ code: 1, stdout: '', stderr: 'custos: login failed\n' });
    expect(fs.existsSync(file('carl.cxa')) || fs.existsSync(file('oscar.cxa'))).toBe(false);
    const entries = await withDb((c) =>
      c.database.owner
        .selectFrom('audit_entries')
        .select(['actor_id', 'action', 'resource_type', 'outcome', 'reason'])
        .where('actor_id', 'in', [secrets.carl!.id, secrets.oscar!.id])
        .where('seq', '>', setupSeq)
        .orderBy('seq')
        .execute(),
    );
    expect(entries.filter((e) => e.actor_id === secrets.carl!.id).map((e) => [e.action, e.outcome])).toEqual([
      ['login', 'success'],
      ['export', 'denied'],
      ['logout', 'success'],
    ]);
    expect(entries.filter((e) => e.actor_id === secrets.oscar!.id).map((e) => [e.action, e.outcome])).toEqual(
      [['mfa-failed', 'denied']],
    );
  }, 300_000);

  it('exports every patient after a fresh login, audited once with the count, and decrypts it back', async () => {
    const out = file('practice.cxa');
    const r = await runCli(all('olga', out), d.env, `${PASSWORD}\n${code('olga')}\n${PASS}\n`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout) as Record<string, unknown>;
    const bytes = fs.readFileSync(out);
    expect(summary).toEqual({
      exportId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      patients: 3,
      records: 3,
      bytes: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      file: out,
    });
    expect(fs.statSync(out).mode & 0o777).toBe(0o600);
    for (const m of [FAMILY, NOTE, PSY, PASS, PURPOSE, PASSWORD]) {
      expect(bytes.includes(Buffer.from(m)), m).toBe(false);
      expect(r.stdout).not.toContain(m);
    }

    // Back to NDJSON, from the environment's passphrase.
    const dec = await runCli(['export', '--decrypt', out], { ...d.env, CUSTOS_EXPORT_PASSPHRASE: PASS });
    expect(dec.stderr).toBe('');
    expect(dec.code).toBe(0);
    const resources = dec.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { resourceType: string; name?: { family: string }[] });
    expect(resources.filter((x) => x.resourceType === 'Patient').map((p) => p.name?.[0]?.family)).toEqual(
      expect.arrayContaining([`${FAMILY}0`, `${FAMILY}1`, `${FAMILY}2`]),
    );
    expect(resources.map((x) => x.resourceType).sort()).toEqual([
      ...Array(3).fill('DocumentReference'),
      ...Array(3).fill('Patient'),
    ]);
    expect(dec.stdout).not.toContain(PSY);
    expect(dec.stdout).not.toContain(Buffer.from(PSY).toString('base64'));
    // Into a new file, passphrase from standard input.
    const ndjson = file('practice.ndjson');
    expect(await runCli(['export', '--decrypt', out, '--out', ndjson], d.env, `${PASS}\n`)).toMatchObject({
      code: 0,
      stderr: '',
    });
    expect(fs.readFileSync(ndjson, 'utf8')).toBe(dec.stdout);
    // A wrong passphrase: one line, exit 1, no file.
    const bad = await runCli(
      ['export', '--decrypt', out, '--out', file('bad.ndjson')],
      d.env,
      'wrong passphrase entirely\n',
    );
    expect(bad).toEqual({
      code: 1,
      stdout: '',
      stderr: 'custos: export archive: wrong passphrase, or the file was changed or cut short\n',
    });
    expect(fs.readdirSync(d.dataDir).filter((f) => f.startsWith('bad.ndjson'))).toEqual([]);

    const { entries, registry } = await withDb(async (c) => ({
      entries: await c.database.owner
        .selectFrom('audit_entries')
        .selectAll()
        .where('actor_id', '=', secrets.olga!.id)
        .where('seq', '>', setupSeq)
        .orderBy('seq')
        .execute(),
      registry: (await sql<Record<string, unknown>>`SELECT * FROM exports`.execute(c.database.owner)).rows,
    }));
    expect(entries.map((e) => [e.action, e.outcome, e.client_address])).toEqual([
      ['login', 'success', 'cli'],
      ['export', 'success', 'cli'],
      ['logout', 'success', 'cli'],
    ]);
    expect(entries[1]).toMatchObject({
      resource_type: 'export',
      resource_id: summary.exportId,
      purpose: 'export',
    });
    expect(entries[1]!.detail).toMatchObject({ patients: 3, purposeCode: 'backup-verification' });
    expect(JSON.stringify(entries)).not.toContain(PURPOSE);
    expect(registry).toMatchObject([
      {
        id: summary.exportId,
        requested_by: secrets.olga!.id,
        purpose_code: 'backup-verification',
        status: 'finished',
        patient_count: 3,
        sha256: summary.sha256,
      },
    ]);
  }, 300_000);
});

const USAGE =
  'export needs --patient ID, or --all --user NAME --purpose-code CODE --purpose TEXT --out FILE, or --decrypt FILE';

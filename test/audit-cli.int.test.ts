import fs from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCustos } from '../src/app/custos.ts';
import { loadConfig } from '../src/config/config.ts';
import { runCli } from './support/cli.ts';
import { type CliData, cliData } from './support/cli-data.ts';
import { skipReason } from './support/db.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] audit-cli.int.test.ts skipped: ${skip}`);
}

/** `custos audit verify | checkpoints | prove | check-proof | public-key` end to end. */
describe.skipIf(skip)('custos audit', () => {
  let d: CliData;
  const out = (name: string) => path.join(d.dataDir, name);
  beforeAll(async () => {
    d = await cliData();
    expect((await runCli(['demo', '--patients', '3', '--seed', '5'], d.env)).code).toBe(0);
    expect((await runCli(['demo', '--patients', '2', '--seed', '6'], d.env)).code).toBe(0);
  }, 120_000);
  afterAll(async () => {
    await d?.cleanup();
  });

  it('verifies an intact trail with exit 0 and a one-line summary', async () => {
    const r = await runCli(['audit', 'verify'], d.env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^audit trail intact: \d+ entries in 2 checkpoints verified \(tree size \d+\), 0 not yet sealed\n$/,
    );
  });

  it('prints checkpoints as JSON lines, and --since skips the older ones', async () => {
    const all = (await runCli(['audit', 'checkpoints'], d.env)).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(all.map((c) => c.number)).toEqual([1, 2]);
    expect(all[1]).toMatchObject({
      format: 'custos-checkpoint/1',
      prevHash: expect.any(String),
      signature: expect.any(String),
    });
    const since = (await runCli(['audit', 'checkpoints', '--since', '1'], d.env)).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(since.map((c) => c.number)).toEqual([2]);
  });

  it('proves an entry and a consistency that check-proof verifies offline, and rejects a tampered proof', async () => {
    fs.writeFileSync(out('pub.pem'), (await runCli(['audit', 'public-key'], d.env)).stdout);
    const inclusion = await runCli(['audit', 'prove', '--entry', '7'], d.env);
    expect(inclusion.code, inclusion.stderr).toBe(0);
    fs.writeFileSync(out('incl.json'), inclusion.stdout);
    // Offline: no database configured at all.
    const ok = await runCli(['audit', 'check-proof', out('incl.json'), '--public-key', out('pub.pem')], {});
    expect(ok).toMatchObject({
      code: 0,
      stdout: expect.stringMatching(
        /^proof verifies: entry 7 is leaf 6 of the tree of size \d+ signed in checkpoint 2\n$/,
      ),
    });
    const forged = JSON.parse(inclusion.stdout);
    const canonical = Buffer.from(forged.entry.canonical, 'base64');
    canonical[canonical.length - 1]! ^= 1;
    forged.entry.canonical = canonical.toString('base64');
    fs.writeFileSync(out('forged.json'), JSON.stringify(forged));
    const bad = await runCli(
      ['audit', 'check-proof', out('forged.json'), '--public-key', out('pub.pem')],
      {},
    );
    expect(bad).toEqual({
      code: 1,
      stdout: 'proof does not verify: entry 7: inclusion proof does not verify against checkpoint 2\n',
      stderr: '',
    });

    const consistency = await runCli(['audit', 'prove', '--from', '1', '--to', '2'], d.env);
    expect(consistency.code, consistency.stderr).toBe(0);
    fs.writeFileSync(out('cons.json'), consistency.stdout);
    const c = await runCli(['audit', 'check-proof', out('cons.json'), '--public-key', out('pub.pem')], {});
    expect(c.stdout).toMatch(
      /^proof verifies: checkpoint 2 \(size \d+\) extends checkpoint 1 \(size \d+\)\n$/,
    );
  });

  it('explains usage errors with exit 2', async () => {
    expect(await runCli(['audit', 'prove'], d.env)).toMatchObject({
      code: 2,
      stderr: 'custos: prove needs either --entry SEQ or both --from N and --to M (see custos --help)\n',
    });
    expect(await runCli(['audit', 'verify', '--from-checkpoint', 'x'], d.env)).toMatchObject({ code: 2 });
    expect(await runCli(['audit', 'frob'], d.env)).toMatchObject({ code: 2 });
  });

  it('fails with exit 1 naming the first bad entry after tampering, and anchors catch a deleted checkpoint', async () => {
    fs.writeFileSync(out('anchors.jsonl'), (await runCli(['audit', 'checkpoints'], d.env)).stdout);
    const c = await openCustos(loadConfig(d.env));
    try {
      await sql`ALTER TABLE audit_entries DISABLE TRIGGER USER`.execute(c.database.owner);
      await sql`UPDATE audit_entries SET actor_id = 'someone-else' WHERE seq = 5`.execute(c.database.owner);
      await sql`ALTER TABLE audit_entries ENABLE TRIGGER USER`.execute(c.database.owner);
    } finally {
      await c.close();
    }
    const r = await runCli(['audit', 'verify'], d.env);
    expect(r).toEqual({
      code: 1,
      stdout:
        'audit trail broken at entry 5: does not match the leaf sealed in checkpoint 1 (changed, or entries reordered)\n',
      stderr: '',
    });
    // Put the entry back, then delete the newest checkpoint: only the anchored copy can tell.
    const c2 = await openCustos(loadConfig(d.env));
    try {
      await sql`ALTER TABLE audit_entries DISABLE TRIGGER USER`.execute(c2.database.owner);
      await sql`UPDATE audit_entries SET actor_id = 'system' WHERE seq = 5`.execute(c2.database.owner);
      await sql`ALTER TABLE audit_checkpoints DISABLE TRIGGER USER`.execute(c2.database.owner);
      await sql`DELETE FROM audit_checkpoints WHERE number = 2`.execute(c2.database.owner);
      // Keep the trail unsealed: a sealing round at the end of a command would reseal it.
      await sql`ALTER TABLE audit_entries ENABLE TRIGGER USER`.execute(c2.database.owner);
      await sql`ALTER TABLE audit_checkpoints ENABLE TRIGGER USER`.execute(c2.database.owner);
    } finally {
      await c2.close();
    }
    const anchored = await runCli(['audit', 'verify', '--anchor', out('anchors.jsonl')], d.env);
    expect(anchored).toEqual({
      code: 1,
      stdout:
        'audit trail broken at checkpoint 2: is missing or differs from the copy kept outside the database\n',
      stderr: '',
    });
  });
});

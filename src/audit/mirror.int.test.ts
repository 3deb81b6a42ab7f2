import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCustos, skipReason, type TestCustos } from '../../test/support/db.ts';
import { identity, system } from '../../test/support/fixtures.ts';
import { fileMirror, sealIfFree } from './sealer.ts';
import { syslogMirror } from './syslog.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] mirror.int.test.ts skipped: ${skip}`);
}

/** OWASP ASVS 16.4.3: a second copy of every sealed entry outside the database. */
describe.skipIf(skip)('the audit mirror', () => {
  let c: TestCustos;
  let dir: string;
  beforeAll(async () => {
    c = await openTestCustos();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'custos-mirror-'));
  });
  afterAll(async () => {
    await c?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('writes each sealed entry once as a JSON line, with ids and pseudonyms only', async () => {
    const file = path.join(dir, 'audit.jsonl');
    const sys = system(c.practiceId);
    const { id } = await c.chart.createPatient(
      sys,
      identity({ name: { given: ['Mirrortest'], family: 'Nomatch' } }),
    );
    await c.chart.readPatient(sys, id);
    const first = await sealIfFree({ db: c.database.db, keyring: c.keyring, mirror: fileMirror(file) });
    expect(first).toMatchObject({ checkpoints: 1, entries: 2 });
    await c.chart.readChart(sys, id);
    await sealIfFree({ db: c.database.db, keyring: c.keyring, mirror: fileMirror(file) });
    await sealIfFree({ db: c.database.db, keyring: c.keyring, mirror: fileMirror(file) });
    const lines = fs
      .readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.seq, l.action, l.checkpoint])).toEqual([
      ['1', 'create', 1],
      ['2', 'read', 1],
      ['3', 'read', 2],
    ]);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const text = fs.readFileSync(file, 'utf8');
    expect(text).not.toContain('Mirrortest');
    expect(text).not.toContain(id);
  });

  it('sends each sealed entry to a syslog collector over UDP (RFC 5424) and TCP (octet counting)', async () => {
    const udp = dgram.createSocket('udp4');
    const datagrams: string[] = [];
    udp.on('message', (m) => datagrams.push(m.toString('utf8')));
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    const tcpData: Buffer[] = [];
    const tcp = net.createServer((s) => s.on('data', (d) => tcpData.push(d)));
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    const udpMirror = syslogMirror(`udp://127.0.0.1:${(udp.address() as net.AddressInfo).port}`);
    const tcpMirror = syslogMirror(`tcp://127.0.0.1:${(tcp.address() as net.AddressInfo).port}`);
    try {
      const sys = system(c.practiceId);
      const { id } = await c.chart.createPatient(
        sys,
        identity({ name: { given: ['Syslogtest'], family: 'Nomatch' } }),
      );
      await c.chart.readPatient(sys, id);
      const both: Parameters<typeof sealIfFree>[0]['mirror'] = async (e, cp) => {
        await udpMirror.mirror(e, cp);
        await tcpMirror.mirror(e, cp);
      };
      const r = await sealIfFree({ db: c.database.db, keyring: c.keyring, mirror: both });
      expect(r?.entries).toBe(2);
      await until(
        () => datagrams.length === 2 && Buffer.concat(tcpData).toString().split('<110>1 ').length === 3,
      );
      const parse = (m: string) => {
        const match = /^<110>1 (\S+) (\S+) custos (\d+) audit - (\{.*\})$/.exec(m);
        expect(match, m.slice(0, 40)).not.toBeNull();
        return JSON.parse(match![4]!) as { seq: string; action: string };
      };
      expect(datagrams.map((d) => parse(d).action)).toEqual(['create', 'read']);
      // TCP: "LEN SP MSG" frames, each LEN the exact byte length of its message.
      let rest = Buffer.concat(tcpData);
      const frames: string[] = [];
      while (rest.length > 0) {
        const sp = rest.indexOf(0x20);
        const len = Number(rest.subarray(0, sp).toString());
        frames.push(rest.subarray(sp + 1, sp + 1 + len).toString('utf8'));
        rest = rest.subarray(sp + 1 + len);
      }
      expect(frames.map((f) => parse(f).seq)).toEqual(datagrams.map((d) => parse(d).seq));
      expect(datagrams.join('') + frames.join('')).not.toContain('Syslogtest');
      expect(() => syslogMirror('http://127.0.0.1:514')).toThrow(/CUSTOS_AUDIT_SYSLOG/);
    } finally {
      await udpMirror.close();
      await tcpMirror.close();
      udp.close();
      tcp.close();
    }
  });
});

async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !ok(); i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  expect(ok()).toBe(true);
}

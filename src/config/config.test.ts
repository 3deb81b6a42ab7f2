import { describe, expect, it } from 'vitest';
import { main } from '../cli/main.ts';
import { isCustosError } from '../errors.ts';
import { loadConfig } from './config.ts';

describe('configuration', () => {
  it('limits uploads to 25 MiB unless CUSTOS_MAX_UPLOAD_BYTES says otherwise', () => {
    expect(loadConfig({}, '/srv').maxUploadBytes).toBe(25 * 1024 * 1024);
    expect(loadConfig({ CUSTOS_MAX_UPLOAD_BYTES: '1048576' }, '/srv').maxUploadBytes).toBe(1048576);
  });

  it.each(['lots', '0', '-5', '1.5'])('refuses CUSTOS_MAX_UPLOAD_BYTES=%s, naming the variable', (value) => {
    let error: unknown;
    try {
      loadConfig({ CUSTOS_MAX_UPLOAD_BYTES: value }, '/srv');
    } catch (e) {
      error = e;
    }
    expect(isCustosError(error, 'CUSTOS_ERR_VALIDATION')).toBe(true);
    expect((error as Error).message).toBe(
      'CUSTOS_MAX_UPLOAD_BYTES: must be a positive whole number of bytes',
    );
  });

  it('makes a bad setting one line on stderr and exit code 2 for any command', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = {
      stdout: { write: (s: string) => out.push(s) > 0, isTTY: false },
      stderr: { write: (s: string) => err.push(s) > 0, isTTY: false },
    };
    const previous = process.env.CUSTOS_MAX_UPLOAD_BYTES;
    process.env.CUSTOS_MAX_UPLOAD_BYTES = 'lots';
    try {
      expect(await main(['migrate'], io as never)).toBe(2);
    } finally {
      if (previous === undefined) {
        delete process.env.CUSTOS_MAX_UPLOAD_BYTES;
      } else {
        process.env.CUSTOS_MAX_UPLOAD_BYTES = previous;
      }
    }
    expect(err).toEqual(['custos: CUSTOS_MAX_UPLOAD_BYTES: must be a positive whole number of bytes\n']);
    expect(out).toEqual([]);
  });
});

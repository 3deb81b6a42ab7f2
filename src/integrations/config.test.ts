import { describe, expect, it } from 'vitest';
import { isCustosError } from '../errors.ts';
import { checkFields, checkUrl, DEFAULT_FIELDS, isNonPublicAddress } from './config.ts';

const fieldOf = (f: () => unknown): { field?: string; message: string } => {
  try {
    f();
  } catch (e) {
    if (isCustosError(e, 'CUSTOS_ERR_VALIDATION')) {
      return { ...(e.field ? { field: e.field } : {}), message: e.message };
    }
    throw e;
  }
  throw new Error('no validation error');
};

describe('integration configuration', () => {
  it('accepts the default allow-list and the optional fields, collapsing duplicates', () => {
    expect(checkFields(DEFAULT_FIELDS)).toEqual(['start', 'end', 'appointmentId']);
    expect(checkFields(['start', 'patientName', 'start', 'room', 'clinicianName'])).toEqual([
      'start',
      'patientName',
      'room',
      'clinicianName',
    ]);
  });

  it('refuses the reason and clinical content, naming the field and its place', () => {
    expect(fieldOf(() => checkFields(['start', 'reason']))).toEqual({
      field: 'fields.1',
      message: 'fields.1: "reason" may not be sent: clinical content is never sent to a third party',
    });
    for (const f of [
      'Reason',
      'diagnosis',
      'notes',
      'medication',
      'clinicianSpecialty',
      'patientId',
      'birthDate',
    ]) {
      const e = fieldOf(() => checkFields([f]));
      expect(e.field).toBe('fields.0');
      expect(e.message).toContain(`"${f}" may not be sent`);
    }
    expect(fieldOf(() => checkFields(['start', 'whatever'])).field).toBe('fields.1');
    expect(fieldOf(() => checkFields([])).field).toBe('fields');
  });

  it('takes https URLs only, without credentials or fragment, and public hosts unless allowed', () => {
    const pub = { allowPrivateAddresses: false };
    const priv = { allowPrivateAddresses: true };
    expect(checkUrl('https://hooks.example.com/custos?x=1', pub)).toBe(
      'https://hooks.example.com/custos?x=1',
    );
    for (const bad of [
      'http://hooks.example.com/',
      'ftp://hooks.example.com/',
      'not a url',
      'https://user:pw@hooks.example.com/',
      'https://hooks.example.com/#frag',
      'https://127.0.0.1:9999/',
      'https://10.1.2.3/',
      'https://[::1]/',
      'https://localhost/',
      'https://169.254.169.254/latest',
    ]) {
      expect(fieldOf(() => checkUrl(bad, pub)).field, bad).toBe('url');
    }
    expect(checkUrl('https://127.0.0.1:9999/hook', priv)).toBe('https://127.0.0.1:9999/hook');
    expect(fieldOf(() => checkUrl('http://127.0.0.1/', priv)).field).toBe('url');
  });

  it('knows non-public addresses, v4-mapped v6 included', () => {
    for (const a of [
      '127.0.0.1',
      '10.0.0.1',
      '172.16.5.4',
      '192.168.1.1',
      '169.254.1.1',
      '::1',
      'fd00::1',
      'fe80::1',
      '::ffff:127.0.0.1',
      '0.0.0.0',
    ]) {
      expect(isNonPublicAddress(a), a).toBe(true);
    }
    for (const a of ['93.184.216.34', '8.8.8.8', '2606:4700::1111']) {
      expect(isNonPublicAddress(a), a).toBe(false);
    }
  });
});

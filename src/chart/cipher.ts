import { randomBytes, randomUUID } from 'node:crypto';
import { type Binding, keyIdOf, open, seal } from '../crypto/envelope.ts';
import type { Keyring } from '../crypto/keyring.ts';
import { CustosError } from '../errors.ts';

/**
 * Per-call key handling for the gate. A patient has one data key, wrapped twice under two
 * unrelated key ids: one referenced by identity rows and one by pseudonymous clinical rows, so
 * that key ids never link a pseudonym to a patient. Unwrapped keys live for one call only.
 */
export class CallKeys {
  readonly #keyring: Keyring;
  readonly #keys = new Map<string, Buffer>();

  constructor(keyring: Keyring) {
    this.#keyring = keyring;
  }

  key(keyId: string, wrapped: Buffer): Buffer {
    let k = this.#keys.get(keyId);
    if (!k) {
      k = this.#keyring.unwrapDataKey(keyId, wrapped);
      this.#keys.set(keyId, k);
    }
    return k;
  }

  openJson<T>(keyId: string, wrapped: Buffer, at: Binding, blob: Buffer): T {
    return JSON.parse(open(this.key(keyId, wrapped), at, blob).toString('utf8')) as T;
  }

  /** Decrypts with the data key its header names, from the wrapped keys fetched with it. */
  openWith<T>(wrappedKeys: ReadonlyMap<string, Buffer>, at: Binding, blob: Buffer): T {
    const keyId = keyIdOf(blob, at);
    const wrapped = wrappedKeys.get(keyId);
    if (!wrapped) {
      throw new CustosError(
        'CUSTOS_ERR_INTEGRITY',
        `ciphertext names a data key that is not the patient's (${at.table}, row ${at.row})`,
      );
    }
    return this.openJson<T>(keyId, wrapped, at, blob);
  }

  /** Decrypts a UTF-8 text sealed with a patient's data key. */
  openText(keyId: string, wrapped: Buffer, at: Binding, blob: Buffer): string {
    return open(this.key(keyId, wrapped), at, blob).toString('utf8');
  }

  /** Wipes the unwrapped keys (best effort: V8 may hold copies, but we do not keep them). */
  dispose(): void {
    for (const k of this.#keys.values()) {
      k.fill(0);
    }
    this.#keys.clear();
  }
}

export const sealJson = (key: Buffer, keyId: string, at: Binding, value: unknown): Buffer =>
  seal(key, keyId, at, Buffer.from(JSON.stringify(value), 'utf8'));

export const patientBodyAt = (patientId: string, version: number): Binding => ({
  table: 'patient_versions',
  column: 'body',
  row: patientId,
  version,
});
export const recordBodyAt = (recordId: string, version: number): Binding => ({
  table: 'record_versions',
  column: 'body',
  row: recordId,
  version,
});
export const linkAt = (patientId: string): Binding => ({
  table: 'patient_links',
  column: 'link',
  row: patientId,
  version: 0,
});

/** The decrypted link of a patient. */
export interface Link {
  readonly pseudonym: string;
  readonly clinicalKeyId: string;
  readonly identityKeyId: string;
}

/** A fresh random pseudonym: 128 bits, URL-safe. */
export const newPseudonym = (): string => `ps_${randomBytes(16).toString('base64url')}`;

/** A fresh data key with its two key references. */
export function newDataKey(): { dek: Buffer; identityKeyId: string; clinicalKeyId: string } {
  return { dek: randomBytes(32), identityKeyId: randomUUID(), clinicalKeyId: randomUUID() };
}
